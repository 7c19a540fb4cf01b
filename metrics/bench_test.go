package metrics

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

// benchPort is switch/bench_test.go's cheapest endpoint (copied: it lives
// in another package's test file): ReadFrames stamps a header into lent
// slots and WriteFrames only counts.
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
	sent   atomic.Int64 // frame copies generated
	window int64        // most copies in flight: flow control, as TCP would give
	want   int64
	done   chan struct{}
}

const benchBatch = 64

func (p *benchPort) ReadFrames(fs []*frame.Frame) (int, error) {
	n := int64(len(fs))
	if left := p.budget.Add(-n); left < 0 {
		n += left
		if n <= 0 {
			p.budget.Add(int64(len(fs)))
			select {
			case <-p.closed:
				return 0, fmt.Errorf("bench: %w", net.ErrClosed)
			case <-time.After(100 * time.Microsecond):
				return 0, nil
			}
		}
	}
	for p.sink.sent.Load()-p.sink.got.Load() > p.sink.window {
		runtime.Gosched()
	}
	p.sink.sent.Add(n)
	for _, f := range fs[:n] {
		f.SetLen(p.size)
		copy(f.Bytes(), p.hdr[:])
	}
	runtime.Gosched()
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

func (p *benchPort) BatchSize() int { return benchBatch }

func (p *benchPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// BenchmarkMetricsForward is switch's BenchmarkForward (unicast between
// in-memory ports) without metrics and with Prometheus scraping /metrics
// over HTTP every second, and every 10 ms to make the cost visible. Compare
// the frames/s of the sub-benchmarks side by side:
//
//	go test ./metrics -run '^$' -bench MetricsForward -benchtime 3000000x -count 6 | benchstat -col /scrape -
func BenchmarkMetricsForward(b *testing.B) {
	for _, nports := range []int{2, 16} {
		for _, scrape := range []time.Duration{0, time.Second, 10 * time.Millisecond} {
			name := "none"
			if scrape > 0 {
				name = scrape.String()
			}
			b.Run(fmt.Sprintf("ports=%d/scrape=%s", nports, name), func(b *testing.B) {
				benchForward(b, nports, 64, scrape)
			})
		}
	}
}

func benchForward(b *testing.B, nports, size int, scrape time.Duration) {
	mac := func(i int) fdb.MAC { return fdb.MAC{0x02, 0, 0, 0, 0, byte(i + 1)} }
	cfg := engine.Config{FDB: fdb.Config{AgingTime: -1}}
	for i := range nports {
		cfg.Static = append(cfg.Static, engine.StaticEntry{MAC: mac(i), Port: fmt.Sprint(i)})
	}
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()

	sink := &benchSink{want: int64(b.N), window: int64(e.Config().QueueLen) / 2, done: make(chan struct{}, 1)}
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

	var scrapes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if scrape > 0 {
		reg, err := NewRegistry(NewCollector(e, nil, BuildInfo{Version: "bench", GoVersion: runtime.Version()}))
		if err != nil {
			b.Fatal(err)
		}
		srv, err := Serve("127.0.0.1:0", reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		url := "http://" + srv.Addr().String() + "/metrics"
		get := func() error {
			resp, err := http.Get(url)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		}
		// A first scrape outside the timed run, as a Prometheus that has
		// been scraping for a while would have done: connection and
		// collectors warmed up.
		if err := get(); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			t := time.NewTicker(scrape)
			defer t.Stop()
			for {
				select {
				case <-t.C:
				case <-stop:
					return
				}
				if err := get(); err != nil {
					b.Error(err)
					return
				}
				scrapes.Add(1)
			}
		})
	}
	defer wg.Wait()
	defer close(stop)

	b.SetBytes(int64(size))
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	budget.Store(int64(b.N))
	select {
	case <-sink.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d frames arrived", sink.got.Load(), b.N)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	// CPU time per frame holds up better than frames/s on a machine
	// shared with other work; it includes the scrapes.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
	if scrape > 0 {
		b.ReportMetric(float64(scrapes.Load())/el.Seconds(), "scrapes/s")
	}
	for _, p := range e.Ports() {
		for r := range ports.NumDropReasons {
			if n := p.Stats().Dropped(r); n > 0 {
				b.Fatalf("port %s dropped %d frames (%s)", p.Name, n, r)
			}
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMetricsScrape measures one scrape of a switch with 16 ports
// through the collector alone and through the HTTP handler, Go and process
// collectors included: its time divided by the scrape interval is the
// share of one core that metrics cost.
func BenchmarkMetricsScrape(b *testing.B) {
	e, err := engine.New(engine.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	for i := range 16 {
		if _, err := e.Attach(fmt.Sprint("port", i), "mem", newMemPort()); err != nil {
			b.Fatal(err)
		}
	}
	c := NewCollector(e, nil, BuildInfo{Version: "bench", GoVersion: runtime.Version()})
	b.Run("collect", func(b *testing.B) {
		ch := make(chan prometheus.Metric, 1024)
		b.ReportAllocs()
		for b.Loop() {
			c.Collect(ch)
			for len(ch) > 0 {
				<-ch
			}
		}
	})
	b.Run("http", func(b *testing.B) {
		reg, err := NewRegistry(c)
		if err != nil {
			b.Fatal(err)
		}
		srv, err := Serve("127.0.0.1:0", reg, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		url := "http://" + srv.Addr().String() + "/metrics"
		b.ReportAllocs()
		for b.Loop() {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			b.SetBytes(n)
		}
	})
}
