package impair

import (
	"fmt"

	"github.com/zswitch/zswitch/frame"
)

// A Verdict says what Push did with a frame.
type Verdict uint8

const (
	Held       Verdict = iota // the line holds the frame until it is due
	Duplicated                // the line holds the frame twice: one extra copy to count
	Lost                      // the link lost it: the caller's reference comes back, to count and release
	Overflowed                // the line held Limit frames: as Lost; count it as a rate-limit drop
)

// Dropped reports whether the caller got its reference back.
func (v Verdict) Dropped() bool { return v >= Lost }

func (v Verdict) String() string {
	switch v {
	case Held:
		return "held"
	case Duplicated:
		return "duplicated"
	case Lost:
		return "lost"
	case Overflowed:
		return "overflowed"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// A Line is one direction of an impaired link: it holds frame references
// until they are due and hands them back in due order.
//
// A Line is used by one goroutine at a time; the caller serialises Push,
// Due, Next, Len, Idle, Flush and SetConfig. Stats may be called from any
// goroutine. Push and Due allocate nothing once the line has held its most
// frames.
type Line struct {
	cfg    Config
	loss   lossModel
	from   int // first byte corruption may flip
	limit  int
	bucket bucket
	sched  schedule
	seq    uint64

	lossRNG, dupRNG, corruptRNG, reorderRNG, delayRNG stream

	spare [1]*frame.Frame // Pool.Get's argument for a private copy
	stats counters
}

// NewLine returns a line that applies cfg, or the error of cfg.Validate.
func NewLine(cfg Config) (*Line, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Line{}
	l.reseed(cfg.Seed)
	l.apply(cfg)
	return l, nil
}

// SetConfig changes what the line does to frames pushed from now on.
// Frames it holds keep their due times. The random streams restart only
// when the seed changes, so changing one setting does not replay earlier
// decisions.
func (l *Line) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Seed != l.cfg.Seed {
		l.reseed(cfg.Seed)
	}
	l.apply(cfg)
	return nil
}

// Config returns the line's settings.
func (l *Line) Config() Config { return l.cfg }

func (l *Line) reseed(seed uint64) {
	l.lossRNG.seed(seed, streamLoss)
	l.dupRNG.seed(seed, streamDuplicate)
	l.corruptRNG.seed(seed, streamCorrupt)
	l.reorderRNG.seed(seed, streamReorder)
	l.delayRNG.seed(seed, streamDelay)
}

func (l *Line) apply(cfg Config) {
	bad := l.loss.inBadState
	l.cfg = cfg
	l.loss = newLossModel(cfg)
	l.loss.inBadState = bad && l.loss.burst
	l.from = cfg.corruptFrom()
	l.limit = cfg.limit()
	l.bucket.configure(cfg.Rate, cfg.Burst)
}

// Push hands the line the caller's reference to f, arriving at now
// (nanoseconds of the caller's monotonic clock). When the verdict is Lost
// or Overflowed the reference comes back: the caller counts and releases
// it. Otherwise the line holds f (or a corrupted private copy of it) until
// Due hands it out.
func (l *Line) Push(f *frame.Frame, now int64) Verdict {
	l.stats.in.Add(1)
	if l.loss.lost(&l.lossRNG) {
		l.stats.lost.Add(1)
		return Lost
	}
	if l.sched.len() >= l.limit {
		l.stats.overflowed.Add(1)
		return Overflowed
	}
	// A duplicate that would not fit is not made.
	dup := l.dupRNG.chance(l.cfg.Duplicate) && l.sched.len()+2 <= l.limit
	if dup {
		f.Retain(1)
		l.stats.duplicated.Add(1)
	}
	first := f
	if l.corruptRNG.chance(l.cfg.Corrupt) {
		first = l.corrupt(f)
	}
	reordered := l.cfg.Delay != 0 && l.reorderRNG.chance(l.cfg.Reorder)
	if reordered {
		l.stats.reordered.Add(1)
	}
	l.schedule(first, now, reordered)
	if !dup {
		l.stats.held.Add(1)
		return Held
	}
	l.schedule(f, now, false)
	l.stats.held.Add(2)
	return Duplicated
}

// corrupt flips one random bit at or after l.from and returns the frame
// that carries it: f itself when the line holds the only reference, else a
// private copy, so other holders of f never see the damage.
func (l *Line) corrupt(f *frame.Frame) *frame.Frame {
	span := f.Len() - l.from
	if span <= 0 {
		l.stats.corruptSkipped.Add(1)
		return f
	}
	bit := l.corruptRNG.rng.IntN(span * 8)
	target := f
	if f.Shared() {
		p := f.Pool()
		if p == nil || p.Get(l.spare[:]) == 0 {
			l.stats.corruptSkipped.Add(1)
			return f
		}
		target, l.spare[0] = l.spare[0], nil
		if !f.CopyTo(target) { // cannot happen: one pool, one slot size
			target.Free()
			l.stats.corruptSkipped.Add(1)
			return f
		}
		f.Free() // the line's reference moves to the copy
	}
	target.Bytes()[l.from+bit/8] ^= 1 << (bit % 8)
	l.stats.corrupted.Add(1)
	return target
}

// schedule queues f to leave after the rate limit and, unless skipDelay,
// the delay with jitter.
func (l *Line) schedule(f *frame.Frame, now int64, skipDelay bool) {
	due := l.bucket.depart(now, f.Len())
	if !skipDelay {
		due += l.delay()
	}
	l.seq++
	l.sched.push(entry{f: f, due: due, seq: l.seq})
}

// delay draws one frame's delay: Delay plus jitter, never below 0.
func (l *Line) delay() int64 {
	d, j := int64(l.cfg.Delay), float64(l.cfg.Jitter)
	if j == 0 {
		return d
	}
	var x float64
	if l.cfg.Dist == Normal {
		x = l.delayRNG.rng.NormFloat64()
	} else {
		x = 2*l.delayRNG.rng.Float64() - 1
	}
	return max(d+int64(j*x), 0)
}

// Due appends to out, in due order (ties in arrival order), the frames due
// at now, each with the reference the line held, and returns the extended
// slice. It appends at most cap(out)−len(out) frames, so it never
// allocates; frames left behind stay due, and Next reports them.
func (l *Line) Due(now int64, out []*frame.Frame) []*frame.Frame {
	k := 0
	for l.sched.len() > 0 && l.sched.first().due <= now && len(out) < cap(out) {
		out = append(out, l.sched.pop().f)
		k++
	}
	if k > 0 {
		l.stats.held.Add(int64(-k))
	}
	return out
}

// Next returns when the earliest held frame is due; false if none is held.
func (l *Line) Next() (int64, bool) {
	if l.sched.len() == 0 {
		return 0, false
	}
	return l.sched.first().due, true
}

// Len is the number of frame references the line holds.
func (l *Line) Len() int { return l.sched.len() }

// Idle reports whether the line holds nothing and impairs nothing, so the
// caller may bypass it.
func (l *Line) Idle() bool { return l.sched.len() == 0 && l.cfg.IsZero() }

// Flush appends every frame the line holds to out, in due order, and
// returns the extended slice; the caller counts and releases them (a
// detached port's frames). Unlike Due it grows out as needed.
func (l *Line) Flush(out []*frame.Frame) []*frame.Frame {
	k := l.sched.len()
	for l.sched.len() > 0 {
		out = append(out, l.sched.pop().f)
	}
	l.stats.held.Add(int64(-k))
	return out
}

// Stats returns a snapshot of the line's counters. It is safe to call from
// any goroutine.
func (l *Line) Stats() Stats { return l.stats.snapshot() }
