package engine

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

// benchPort is the cheapest possible endpoint, so the benchmark measures
// the engine: ReadFrames stamps a header into lent slots (the payload is
// whatever the slot held) and WriteFrames only counts.
type benchPort struct {
	ports.Stats
	hdr    [14]byte
	size   int
	budget *atomic.Int64 // frames left to generate, shared by all ports
	sink   *benchSink
	closed chan struct{}
	once   sync.Once
}

type benchSink struct {
	got    atomic.Int64 // frame copies written
	sent   atomic.Int64 // frame copies generated (frames × fan-out)
	fanout int64
	window int64 // most copies in flight: flow control, as TCP would give
	want   int64
	done   chan struct{}
}

func (p *benchPort) ReadFrames(fs []*frame.Frame) (int, error) {
	n := int64(len(fs))
	if left := p.budget.Add(-n); left < 0 {
		n += left
		if n <= 0 {
			p.budget.Add(int64(len(fs))) // give back what was not taken
			select {
			case <-p.closed:
				return 0, fmt.Errorf("bench: %w", net.ErrClosed)
			case <-time.After(100 * time.Microsecond): // idle until the run starts
				return 0, nil
			}
		}
	}
	// Flow control keeps the generators from overrunning the queues: the
	// benchmark measures forwarding, not tail drops.
	for p.sink.sent.Load()-p.sink.got.Load() > p.sink.window {
		runtime.Gosched()
	}
	p.sink.sent.Add(n * p.sink.fanout)
	for _, f := range fs[:n] {
		f.SetLen(p.size)
		copy(f.Bytes(), p.hdr[:])
	}
	runtime.Gosched() // a real port would sleep in read(2) now and then
	return int(n), nil
}

func (p *benchPort) WriteFrames(fs []*frame.Frame) (int, error) {
	if p.sink.got.Add(int64(len(fs))) >= p.sink.want {
		select {
		case p.sink.done <- struct{}{}:
		default:
		}
	}
	return len(fs), nil
}

func (p *benchPort) BatchSize() int { return maxBatch }

// benchTryPort is a benchPort that is a ports.TryWriter whose endpoint
// always takes everything: every frame goes the direct way when the
// receiving port is idle.
type benchTryPort struct{ *benchPort }

func (p benchTryPort) TryWriteFrames(fs []*frame.Frame) (int, bool) {
	n, _ := p.WriteFrames(fs)
	return n, false
}

func (p benchTryPort) Flush() error { return nil }

func (p *benchPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// BenchmarkForward measures frames/s through the engine with in-memory
// ports: each port sends unicast to the next one (MACs are static, so no
// flooding), every port sends and receives at once. Run it with -cpu 1 for
// the one-core figure.
func BenchmarkForward(b *testing.B) {
	for _, nports := range []int{2, 16} {
		for _, size := range []int{64, 1514} {
			b.Run(fmt.Sprintf("ports=%d/size=%d", nports, size), func(b *testing.B) {
				benchForward(b, nports, size, false, false, impair.Link{})
			})
		}
	}
	// The same with ports that can write directly (ports.TryWriter).
	for _, nports := range []int{2, 16} {
		b.Run(fmt.Sprintf("ports=%d/size=64/direct", nports), func(b *testing.B) {
			benchForward(b, nports, 64, false, true, impair.Link{})
		})
	}
	b.Run("ports=16/size=64/flood", func(b *testing.B) { benchForward(b, 16, 64, true, false, impair.Link{}) })
	// Every frame through an impairment line in both directions, one that
	// neither delays nor loses (a rate limit far above the traffic): the
	// cost of the lines themselves.
	unlimited := impair.Config{Rate: impair.MaxRate}
	b.Run("ports=2/size=64/impaired", func(b *testing.B) {
		benchForward(b, 2, 64, false, false, impair.Link{In: unlimited, Out: unlimited})
	})
}

func benchForward(b *testing.B, nports, size int, flood, direct bool, imp impair.Link) {
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

	want := int64(b.N)
	if flood {
		want *= int64(nports - 1)
	}
	sink := &benchSink{want: want, fanout: want / int64(b.N), window: int64(e.Config().QueueLen) / 2, done: make(chan struct{}, 1)}
	var budget atomic.Int64
	ps := make([]*benchPort, nports)
	for i := range ps {
		p := &benchPort{size: size, budget: &budget, sink: sink, closed: make(chan struct{})}
		dst := mac((i + 1) % nports)
		if flood {
			dst = fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}
		src := mac(i)
		copy(p.hdr[0:6], dst[:])
		copy(p.hdr[6:12], src[:])
		p.hdr[12], p.hdr[13] = 0x88, 0xb5
		ps[i] = p
		var port ports.Port = p
		if direct {
			port = benchTryPort{p}
		}
		if _, err := e.AttachWith(fmt.Sprint(i), "bench", port, PortConfig{Impair: imp}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	budget.Store(int64(b.N))
	select {
	case <-sink.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d frames arrived", sink.got.Load(), want)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	b.ReportMetric(float64(b.N)*float64(size)*8/el.Seconds()/1e9, "Gbit/s")
	var drops uint64
	for _, p := range e.Ports() {
		for r := range ports.NumDropReasons {
			drops += p.Stats().EgressDrops[r].Load() + p.Stats().IngressDrops[r].Load()
		}
	}
	if drops > 0 {
		b.Fatalf("%d frames dropped", drops)
	}
}
