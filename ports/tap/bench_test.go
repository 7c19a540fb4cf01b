package tap

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/zswitch/zswitch/frame"
)

// BenchmarkTAP measures frames per second through TAP file descriptors,
// with the kernel as the peer, in a network namespace of its own.
//
// bridge: one port writes into TAP zsw0 as fast as it can; the kernel
// bridges (unknown unicast, flooded) to TAP zsw1, where the benchmark
// reads b.N frames with a second port. One op is one frame received; the
// path is write(2), the host's bridge, read(2) — what a frame costs when
// zswitch and the host exchange it through TAPs. When the reader falls
// behind, zsw1's queue (500 frames) overflows in the kernel: "sent/recv"
// says how many frames were written per frame read.
//
// write: WriteFrames alone, into a TAP whose host side drops the frames
// (no protocol takes EtherType 0x88b5): the port's and the kernel's
// receive cost per frame. One op is one frame written.
func BenchmarkTAP(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("bridge/%dB", size), func(b *testing.B) { benchBridge(b, size) })
	}
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("write/%dB", size), func(b *testing.B) { benchWrite(b, size) })
	}
}

func benchBridge(b *testing.B, size int) {
	ns := newNS(b)
	tx := ns.open(b, "zsw0", Options{})
	rx := ns.open(b, "zsw1", Options{})
	ns.do(b, func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "zbr0"}}
		if err := netlink.LinkAdd(br); err != nil {
			return err
		}
		for _, name := range []string{"zsw0", "zsw1"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(l, br); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(br)
	})
	out, in := frames(b, DefaultBatchSize, frame.DefaultSlotSize), frames(b, DefaultBatchSize, frame.DefaultSlotSize)
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
	wg.Wait()
	b.ReportMetric(float64(got)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(sent.Load())/float64(got), "sent/recv")
}

func benchWrite(b *testing.B, size int) {
	ns := newNS(b)
	tx := ns.open(b, "zsw0", Options{})
	out := frames(b, DefaultBatchSize, frame.DefaultSlotSize)
	for i, f := range out {
		setFrame(f, ethFrame(i, size))
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(len(out), b.N-done)
		n, err := tx.WriteFrames(out[:k])
		if n != k || err != nil {
			b.Fatalf("WriteFrames = %d, %v", n, err)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
