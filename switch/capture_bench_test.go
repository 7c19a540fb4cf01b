package engine

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/fdb"
)

// BenchmarkForwardCapture is BenchmarkForward's 2-port, 64-byte case side
// by side: no capture (the datapath's one atomic load per batch), a capture
// of every port (each frame copied twice: in and out) with a reader that
// keeps up, and a capture of a port the traffic does not cross.
func BenchmarkForwardCapture(b *testing.B) {
	for _, mode := range []string{"none", "all", "other-port", "idle-port-only"} {
		b.Run("capture="+mode, func(b *testing.B) { benchForwardCapture(b, 2, 64, mode) })
	}
}

func benchForwardCapture(b *testing.B, nports, size int, mode string) {
	mac := func(i int) fdb.MAC { return fdb.MAC{0x02, 0, 0, 0, 0, byte(i + 1)} }
	cfg := Config{FDB: fdb.Config{AgingTime: -1}}
	for i := range nports {
		cfg.Static = append(cfg.Static, StaticEntry{MAC: mac(i), Port: fmt.Sprint(i)})
	}
	e, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()

	sink := &benchSink{want: int64(b.N), fanout: 1, window: int64(e.Config().QueueLen) / 2, done: make(chan struct{}, 1)}
	var budget atomic.Int64
	for i := range nports {
		p := &benchPort{size: size, budget: &budget, sink: sink, closed: make(chan struct{})}
		dst, src := mac((i+1)%nports), mac(i)
		copy(p.hdr[0:6], dst[:])
		copy(p.hdr[6:12], src[:])
		p.hdr[12], p.hdr[13] = 0x88, 0xb5
		if _, err := e.Attach(fmt.Sprint(i), "bench", p); err != nil {
			b.Fatal(err)
		}
	}
	var c *Capture
	readerDone := make(chan struct{})
	switch mode {
	case "all":
		c, err = e.Capture(CaptureSelect{Port: "all"})
	case "other-port", "idle-port-only":
		if _, err = e.Attach("idle", "bench", &benchPort{size: size, budget: new(atomic.Int64), sink: sink, closed: make(chan struct{})}); err == nil && mode == "other-port" {
			c, err = e.Capture(CaptureSelect{Port: "idle"})
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	if c != nil {
		go func() { // a reader that keeps up, like the pcapng writer would try to
			defer close(readerDone)
			buf := make([]CaptureRecord, 256)
			var sum int
			for {
				n, err := c.Read(context.Background(), buf)
				if err != nil {
					return
				}
				for _, r := range buf[:n] {
					sum += len(r.Data)
				}
			}
		}()
	} else {
		close(readerDone)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	budget.Store(int64(b.N))
	select {
	case <-sink.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d frames arrived", sink.got.Load(), b.N)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	if c != nil {
		s := c.Stats()
		c.Close()
		<-readerDone
		if s.Frames+s.Drops > 0 {
			b.ReportMetric(float64(s.Drops)/float64(s.Frames+s.Drops)*100, "%capdrop")
		}
	}
}
