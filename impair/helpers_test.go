package impair

import (
	"encoding/binary"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

// A rig pushes numbered frames through a line on a virtual clock and
// releases what comes out, so a test only counts.
type rig struct {
	t    testing.TB
	line *Line
	pool *frame.Pool
	one  []*frame.Frame
	out  []*frame.Frame
	size int
	seq  uint32
}

func newRig(t testing.TB, cfg Config, size int) *rig {
	t.Helper()
	l, err := NewLine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool := frame.NewPool(0, frame.DefaultSlotSize)
	pool.Reserve(1 << 20) // grows lazily, as frames are held
	return &rig{t: t, line: l, pool: pool, one: make([]*frame.Frame, 1), out: make([]*frame.Frame, 0, 4096), size: size}
}

// newFrame returns a zeroed pool frame of r.size bytes numbered with the
// next sequence number in bytes 6..10 (the source MAC), where corruption
// never reaches.
func (r *rig) newFrame() *frame.Frame {
	if r.pool.Get(r.one) != 1 {
		r.t.Fatal("pool empty")
	}
	f := r.one[0]
	b := f.Space()[:r.size]
	clear(b)
	binary.BigEndian.PutUint32(b[6:], r.seq)
	r.seq++
	f.SetLen(r.size)
	return f
}

func seqOf(f *frame.Frame) uint32 { return binary.BigEndian.Uint32(f.Bytes()[6:]) }

// push pushes one new frame at now and releases it if dropped.
func (r *rig) push(now int64) Verdict {
	f := r.newFrame()
	v := r.line.Push(f, now)
	if v.Dropped() {
		f.Free()
	}
	return v
}

// due collects the frames due at now and hands each to fn before
// releasing it.
func (r *rig) due(now int64, fn func(f *frame.Frame)) int {
	n := 0
	for {
		r.out = r.line.Due(now, r.out[:0])
		for _, f := range r.out {
			if fn != nil {
				fn(f)
			}
			f.Free()
		}
		n += len(r.out)
		if len(r.out) < cap(r.out) {
			return n
		}
	}
}

// inUse is how many pool slots are not free.
func (r *rig) inUse() int {
	free, total := r.pool.Stats()
	return total - free
}
