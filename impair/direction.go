package impair

import (
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/zswitch/zswitch/frame"
)

// A Direction is one direction of a port's link as a switch keeps it: the
// Config as set at run time and the Line that applies it, made on first
// use and kept from then on, so its counters last and the frames it holds
// keep their due times when the Config changes.
//
// Lock serialises the line's users (the goroutines that push and take
// frames, and Configure); Line and Stats may be read without it.
type Direction struct {
	mu   sync.Mutex
	line atomic.Pointer[Line] // nil until first configured with a non-zero Config
	set  Config
}

// Lock and Unlock guard the line: hold the lock to use it.
func (d *Direction) Lock()   { d.mu.Lock() }
func (d *Direction) Unlock() { d.mu.Unlock() }

// TryLock takes the lock if it is free, for a caller that must not wait.
func (d *Direction) TryLock() bool { return d.mu.TryLock() }

// Line returns the direction's line, nil if it was never impaired. Use it
// with the lock held.
func (d *Direction) Line() *Line { return d.line.Load() }

// Configure sets what the direction does from now on: set is the Config
// as the user gave it (Config reports it back), run the one the line runs
// (set with its seed made the link's own, see ForLink).
func (d *Direction) Configure(set, run Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.line.Load(); l != nil {
		if err := l.SetConfig(run); err != nil {
			return err
		}
	} else if !set.IsZero() {
		l, err := NewLine(run)
		if err != nil {
			return err
		}
		d.line.Store(l)
	}
	d.set = set
	return nil
}

// Config returns the Config as last set.
func (d *Direction) Config() Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set
}

// Stats returns the line's counters, zero if the direction was never
// impaired. It is safe to call at any time.
func (d *Direction) Stats() Stats {
	if l := d.line.Load(); l != nil {
		return l.Stats()
	}
	return Stats{}
}

// Link is both directions of a port's link: In impairs the frames the
// port receives from its peer, Out those sent to it.
type Link struct {
	In  Config `json:"in"`
	Out Config `json:"out"`
}

// LinkStats are both directions' counters; zero for a direction never
// impaired.
type LinkStats struct {
	In, Out Stats
}

// IsZero reports whether l impairs nothing.
func (l Link) IsZero() bool { return l.In.IsZero() && l.Out.IsZero() }

// ForLink returns c as the line of one direction of a named link runs it:
// the seed mixed with the link's name and the direction, so links given
// the same seed still draw different streams, while a run with the same
// seed and names repeats exactly.
func (c Config) ForLink(name, dir string) Config {
	h := fnv.New64a()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(dir))
	c.Seed ^= h.Sum64()
	return c
}

// Reservation is how many buffers a line with this Config may hold at
// once, for the pool to set aside: 0 when it impairs nothing.
func (c Config) Reservation() int {
	if c.IsZero() {
		return 0
	}
	return c.limit()
}

// BatchVerdicts counts what PushBatch did with a batch.
type BatchVerdicts struct {
	Lost       uint64 // lost on the link
	Overflowed uint64 // over the queue limit: a rate-limit drop
	Duplicated uint64 // extra copies made
}

// PushBatch pushes every frame of fs, arriving at now. The references
// that came back (lost or overflowed) are moved to the front of fs, and
// returned as that prefix, for the caller to release; fs's other elements
// are cleared: the line holds those references now.
func (l *Line) PushBatch(fs []*frame.Frame, now int64) (BatchVerdicts, []*frame.Frame) {
	var v BatchVerdicts
	dropped := fs[:0]
	for _, f := range fs {
		switch l.Push(f, now) {
		case Duplicated:
			v.Duplicated++
		case Lost:
			v.Lost++
			dropped = append(dropped, f)
		case Overflowed:
			v.Overflowed++
			dropped = append(dropped, f)
		}
	}
	clear(fs[len(dropped):])
	return v, dropped
}
