package slip

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

var benchSizes = []int{64, 1514}

// BenchmarkEncode: one op is one frame encoded; ethFrame payloads hold
// 0xC0 and 0xDB once every 256 bytes each.
func BenchmarkEncode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			f := ethFrame(1, size)
			buf := make([]byte, 0, MaxEncodedLen(size))
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = AppendFrame(buf[:0], f)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// BenchmarkDecode: one op is one frame decoded, from a 64 KiB read
// holding many, into batches of 64 slots.
func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			var stream []byte
			for i := 0; len(stream) < rxBufSize-MaxEncodedLen(size); i++ {
				stream = AppendFrame(stream, ethFrame(i, size))
			}
			d := NewDecoder(DefaultMaxFrame)
			fs := frames(b, DefaultBatchSize, frame.DefaultSlotSize)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			rest := stream
			for got := 0; got < b.N; {
				if len(rest) == 0 {
					rest = stream
				}
				n, used, _, _ := d.Decode(rest, fs[:min(len(fs), b.N-got)])
				rest = rest[used:]
				got += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// portPair returns a port made by Dial and the port its Listener accepted
// for it.
func portPair(t testing.TB, opt Options) (dialled, acc *Port) {
	t.Helper()
	l := listen(t, opt)
	dialled = dial(t, l.Addr(), opt)
	p, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	acc = p.(*Port)
	t.Cleanup(func() { acc.Close() })
	waitFor(t, "link up", dialled.LinkUp.Load)
	return dialled, acc
}

// BenchmarkSLIPUnix measures frames per second from one port to another
// over a unix socket: a goroutine writes batches of 64 as fast as it can,
// the benchmark reads b.N frames. One op is one frame received.
func BenchmarkSLIPUnix(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			tx, rx := portPair(b, Options{})
			out, in := frames(b, DefaultBatchSize, frame.DefaultSlotSize), frames(b, DefaultBatchSize, frame.DefaultSlotSize)
			for i, f := range out {
				setFrame(f, ethFrame(i, size))
			}
			var stop atomic.Bool
			var wg sync.WaitGroup
			wg.Go(func() {
				for !stop.Load() {
					if _, err := tx.WriteFrames(out); err != nil {
						return
					}
				}
			})
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for got := 0; got < b.N; {
				n, err := rx.ReadFrames(in[:min(len(in), b.N-got)])
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			b.StopTimer()
			stop.Store(true)
			tx.Close()
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestPortZeroAllocs: a batch written on one port and read on the other
// allocates nothing, either way round.
func TestPortZeroAllocs(t *testing.T) {
	for _, pair := range []string{"dialled->accepted", "accepted->dialled"} {
		a, b := portPair(t, Options{})
		if pair == "accepted->dialled" {
			a, b = b, a
		}
		out, in := frames(t, 8, frame.DefaultSlotSize), frames(t, 8, frame.DefaultSlotSize)
		for i, f := range out {
			setFrame(f, ethFrame(i, 300))
		}
		allocs := testing.AllocsPerRun(200, func() {
			if n, err := a.WriteFrames(out); n != len(out) || err != nil {
				t.Fatalf("WriteFrames: %d, %v", n, err)
			}
			for got := 0; got < len(out); {
				n, err := b.ReadFrames(in[:len(out)-got])
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocs per batch, want 0", pair, allocs)
		}
	}
}
