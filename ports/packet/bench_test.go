package packet

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkPacket measures frames per second from one port to another
// across a veth pair: a goroutine writes batches on one end's port as fast
// as it can, the benchmark reads b.N frames on the other end's port. One
// op is one frame received. Frames the receiving socket has no room for
// are lost; "sent/recv" says how many were written per frame read.
func BenchmarkPacket(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			n := newNet(b)
			n.veth(b, "zsa", "zsb", 1500)
			tx := n.openUp(b, "zsa", Options{})
			rx := n.openUp(b, "zsb", Options{})
			out, in := frames(b, DefaultBatchSize), frames(b, DefaultBatchSize)
			for i, f := range out {
				f.SetLen(copy(f.Space(), ethFrame(i, size)))
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
			wg.Wait()
			b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(sent.Load())/float64(got), "sent/recv")
		})
	}
}

// BenchmarkSend compares the two ways to send a batch on an AF_PACKET
// socket: one sendmmsg per 64 frames (what the port does) and one write
// per frame. One op is one frame; nobody reads the far end, so this is the
// sender's cost alone.
func BenchmarkSend(b *testing.B) {
	n := newNet(b)
	n.veth(b, "zsa", "zsb", 1500)
	idx := n.link(b, "zsa").Attrs().Index
	s, err := openSock(n.ns, "zsa", idx, DefaultBatchSize)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	bufs := make([][]byte, DefaultBatchSize)
	for i := range bufs {
		bufs[i] = ethFrame(i, 64)
	}
	b.Run("sendmmsg", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i += len(bufs) {
			k := min(len(bufs), b.N-i)
			for j := range k {
				s.w.SetBuf(j, bufs[j])
			}
			if m, err := s.w.Write(k); m != k || err != nil {
				b.Fatal(m, err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		var cur []byte
		var werr error
		fn := func(fd uintptr) bool {
			_, werr = unix.Write(int(fd), cur)
			return werr != unix.EAGAIN
		}
		for i := range b.N {
			cur = bufs[i%len(bufs)]
			if err := s.rc.Write(fn); err != nil || werr != nil {
				b.Fatal(err, werr)
			}
		}
	})
}
