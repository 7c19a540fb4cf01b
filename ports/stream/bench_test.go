package stream

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

func BenchmarkStreamUnix(b *testing.B) { benchPortToPort(b, "unix") }
func BenchmarkStreamTCP(b *testing.B)  { benchPortToPort(b, "tcp") }

// portPair returns a port made by Dial and the port its Listener accepted
// for it, connected to each other.
func portPair(t testing.TB, network string, opt Options) (dialled, acc *Conn) {
	t.Helper()
	l := listen(t, network, opt)
	dialled = dial(t, network, l.Addr(), opt)
	p, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	acc = p.(*Conn)
	t.Cleanup(func() { acc.Close() })
	waitFor(t, "link up", dialled.LinkUp.Load)
	return dialled, acc
}

// benchPortToPort measures frames per second from one port to another: a
// goroutine writes batches of 64 on one as fast as it can, the benchmark
// reads b.N frames on the other. One op is one frame received.
func benchPortToPort(b *testing.B, network string) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			tx, rx := portPair(b, network, Options{})
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
			tx.Close() // wakes a writer waiting for the reader
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			for _, pair := range []string{"dialled->accepted", "accepted->dialled"} {
				a, b := portPair(t, network, Options{})
				if pair == "accepted->dialled" {
					a, b = b, a
				}
				out, in := frames(t, 8, frame.DefaultSlotSize), frames(t, 8, frame.DefaultSlotSize)
				for i, f := range out {
					setFrame(f, ethFrame(i, 100))
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
		})
	}
}
