// Package capring is the bounded record ring behind packet captures: the
// Ethernet engine's captures and an 802.15.4 medium's record captures.
//
// A Ring copies frames, with a timestamp, their source, direction and
// length, into a bounded buffer of its own. The writer never waits for the
// reader and never lends it a pooled frame: when the buffer is full, frames
// are dropped and counted (Stats.Drops). The reader gets records without a
// copy; their data stays valid until its next Read.
package capring

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// A Direction says which way a captured frame crossed its port. The values
// are pcapng's epb_flags direction bits.
type Direction uint8

const (
	Inbound  Direction = 1 // received from the port's peer
	Outbound Direction = 2 // written to the port's peer
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "in"
	case Outbound:
		return "out"
	}
	return "unknown"
}

// Stats counts what a ring buffered and what it dropped.
type Stats struct {
	Frames uint64 // frames copied into the buffer
	Bytes  uint64 // their captured bytes
	Drops  uint64 // frames lost because the buffer was full
}

// A Record is one captured frame from a source of type S.
type Record[S any] struct {
	Time   time.Time
	Src    S
	Dir    Direction
	Length int    // the frame's length on the wire
	Data   []byte // its first snap length bytes; valid until the next Read
}

// A Ring is a bounded buffer of captured frames. Read it from one
// goroutine; its other methods are safe for concurrent use.
type Ring[S any] struct {
	snap   int
	notify chan struct{} // capacity 1: a record arrived
	done   chan struct{} // closed by Close
	once   sync.Once

	mu     sync.Mutex // guards everything below
	closed bool
	stats  Stats

	// arena holds the frame bytes, a ring addressed by ever-growing offsets:
	// [head, tail) is in use. A record never wraps: when it does not fit
	// before the end, the gap is skipped and it starts at 0.
	arena      []byte
	head, tail uint64
	// recs is a ring of records: [rhead, rtail) are buffered.
	recs         []rec[S]
	rhead, rtail uint64
	// lent is what the last Read handed out: freed by the next Read.
	lentN   uint64
	lentEnd uint64
}

type rec[S any] struct {
	ts     int64 // unix nanoseconds
	src    S
	end    uint64 // arena tail after this record
	off    uint32 // start of data in arena
	n      uint32 // captured bytes
	length uint32 // length on the wire
	dir    Direction
}

// New returns a ring holding up to buffer bytes of frame data in up to
// records records, cutting each frame to snap bytes (0: frame.MaxSlotSize).
// Records are 8-byte aligned, and one may be preceded by a gap where the
// arena wraps: a buffer of (records+1)*S bytes, S a multiple of 8 no
// smaller than snap, always holds records frames.
func New[S any](buffer, records, snap int) *Ring[S] {
	if snap <= 0 {
		snap = frame.MaxSlotSize
	}
	return &Ring[S]{
		snap:   snap,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		arena:  make([]byte, buffer),
		recs:   make([]rec[S], max(records, 1)),
	}
}

// Stats returns the ring's counters.
func (r *Ring[S]) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Add copies fs, taken at ts (unix nanoseconds) from src going d, into the
// buffer, or counts them as dropped. After Close it does nothing.
func (r *Ring[S]) Add(src S, fs []*frame.Frame, d Direction, ts int64) {
	size := uint64(len(r.arena))
	added := false
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for _, f := range fs {
		b := f.Bytes()
		n := min(len(b), r.snap)
		need := uint64(n+7) &^ 7 // 8-byte aligned records: no two share a word
		pos := r.tail % size
		skip := uint64(0)
		if pos+need > size {
			skip = size - pos
		}
		if r.rtail-r.rhead == uint64(len(r.recs)) || r.tail+skip+need-r.head > size {
			r.stats.Drops++
			continue
		}
		off := (pos + skip) % size
		copy(r.arena[off:], b[:n])
		r.tail += skip + need
		r.recs[r.rtail%uint64(len(r.recs))] = rec[S]{
			ts: ts, src: src, end: r.tail, off: uint32(off), n: uint32(n), length: uint32(len(b)), dir: d,
		}
		r.rtail++
		r.stats.Frames++
		r.stats.Bytes += uint64(n)
		added = true
	}
	r.mu.Unlock()
	if added {
		select {
		case r.notify <- struct{}{}:
		default:
		}
	}
}

// Read waits until at least one frame is buffered and fills dst with as
// many as are there. The records' Data stays valid until the next Read,
// which frees it. After Close, Read returns what is still buffered, then
// io.EOF; when ctx ends first, its error.
func (r *Ring[S]) Read(ctx context.Context, dst []Record[S]) (int, error) {
	return r.ReadFunc(ctx, len(dst), func(i int, rec Record[S]) { dst[i] = rec })
}

// ReadFunc is Read handing the records to fn, with their index, instead
// of storing them: it waits like Read, then calls fn for up to limit records.
func (r *Ring[S]) ReadFunc(ctx context.Context, limit int, fn func(i int, rec Record[S])) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	r.mu.Lock()
	r.rhead += r.lentN
	if r.lentN > 0 {
		r.head = r.lentEnd
	}
	r.lentN = 0
	for r.rtail == r.rhead {
		if r.closed {
			r.mu.Unlock()
			return 0, io.EOF
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-r.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		r.mu.Lock()
	}
	n := min(uint64(limit), r.rtail-r.rhead)
	var zero S
	for i := range n {
		e := &r.recs[(r.rhead+i)%uint64(len(r.recs))]
		fn(int(i), Record[S]{
			Time:   time.Unix(0, e.ts),
			Src:    e.src,
			Dir:    e.dir,
			Length: int(e.length),
			Data:   r.arena[e.off : e.off+e.n : e.off+e.n],
		})
		e.src = zero // the ring keeps no reference to a source it handed out
		r.lentEnd = e.end
	}
	r.lentN = n
	r.mu.Unlock()
	return int(n), nil
}

// Close stops the ring: no more frames are added, and Read returns what is
// buffered, then io.EOF. It reports whether this call closed it; later
// calls do nothing.
func (r *Ring[S]) Close() bool {
	first := false
	r.once.Do(func() {
		first = true
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.done)
	})
	return first
}
