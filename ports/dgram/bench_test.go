package dgram

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func BenchmarkDgramUDP(b *testing.B)  { benchPortToPort(b, "udp") }
func BenchmarkDgramUnix(b *testing.B) { benchPortToPort(b, "unix") }

// benchPortToPort measures frames per second from one port to another: a
// goroutine writes batches on one as fast as it can, the benchmark reads
// b.N frames on the other. One op is one frame received. UDP may lose
// frames when the reader falls behind; "sent/recv" says how many were
// written per frame read.
func benchPortToPort(b *testing.B, kind string) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			tx, rx := portPair(b, kind)
			out, in := frames(b, DefaultBatchSize), frames(b, DefaultBatchSize)
			for i, f := range out {
				setFrame(f, ethFrame(i, size))
			}
			var stop atomic.Bool
			var sent atomic.Uint64
			var wg sync.WaitGroup
			wg.Go(func() {
				for !stop.Load() {
					n, err := tx.WriteFrames(out)
					sent.Add(uint64(n))
					if err != nil {
						return
					}
				}
			})
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			got := 0
			for got < b.N {
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
			b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(sent.Load())/float64(got), "sent/recv")
		})
	}
}
