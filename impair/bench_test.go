package impair

import (
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// BenchmarkLine measures one Push and its share of Due per op, on a virtual
// clock advancing 1 µs per frame (a 1 Mframe/s offer).
func BenchmarkLine(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"none", Config{}},
		{"loss", Config{Loss: 0.01}},
		{"delay+rate", Config{Delay: 10 * time.Millisecond, Rate: 10e9, Limit: 100_000}},
		{"delay+jitter+rate", Config{Delay: 10 * time.Millisecond, Jitter: time.Millisecond, Rate: 10e9, Limit: 100_000}},
		{"everything", everything},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := NewLine(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			// Frames cycle through a stack the benchmark owns, so it measures
			// the line, not the pool. Configurations that duplicate or
			// corrupt (copies) go through the pool instead.
			usePool := bc.cfg.Duplicate != 0 || bc.cfg.Corrupt != 0
			pool := frame.NewPool(0, frame.DefaultSlotSize)
			pool.Reserve(200_000)
			free := make([]*frame.Frame, 50_000)
			pool.Get(free)
			get := func() *frame.Frame {
				if usePool {
					pool.Get(free[:1])
					return free[0]
				}
				f := free[len(free)-1]
				free = free[:len(free)-1]
				return f
			}
			put := func(f *frame.Frame) {
				if usePool {
					f.Free()
					return
				}
				free = append(free, f)
			}
			out := make([]*frame.Frame, 0, 64)
			now := int64(0)
			step := func() {
				now += 1000
				f := get()
				f.SetLen(1000)
				if l.Push(f, now).Dropped() {
					put(f)
				}
				for {
					out = l.Due(now, out[:0])
					for _, f := range out {
						put(f)
					}
					if len(out) < cap(out) {
						break
					}
				}
			}
			for range 100_000 {
				step()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				step()
			}
		})
	}
}
