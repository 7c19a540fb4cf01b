package medium

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// benchPort is the cheapest endpoint, so the benchmark measures the
// medium: ReadFrames stamps a length into lent slots, WriteFrames counts.
type benchPort struct {
	ports.Stats
	size   int
	budget *atomic.Int64 // frames left to generate, shared by all ports
	sink   *benchSink
	closed chan struct{}
	once   sync.Once
}

type benchSink struct {
	got    atomic.Int64 // frame copies written
	sent   atomic.Int64 // frame copies generated (frames × 2 receivers)
	window int64        // most copies in flight: flow control, as a FIFO gives
	want   int64
	done   chan struct{}
}

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
	p.sink.sent.Add(2 * n)
	for _, f := range fs[:n] {
		f.SetLen(p.size)
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

func (p *benchPort) BatchSize() int { return maxBatch }

func (p *benchPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// BenchmarkMedium measures frames per second through a medium of three
// in-memory nodes, every one sending: one op is one frame sent, heard by
// the two others.
func BenchmarkMedium(b *testing.B) {
	for _, size := range []int{5, 127} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			m := New(Config{})
			defer m.Close()
			var budget atomic.Int64
			sink := &benchSink{window: 256, done: make(chan struct{}, 1)}
			for i := range 3 {
				attach(b, m, fmt.Sprint(i), &benchPort{size: size, budget: &budget, sink: sink, closed: make(chan struct{})})
			}
			// Warm up: grow the pool and the batch pool.
			sink.want = 30000
			budget.Store(15000)
			<-sink.done
			base := sink.got.Load()
			sink.want = base + 2*int64(b.N)
			b.ReportAllocs()
			b.ResetTimer()
			budget.Store(int64(b.N))
			<-sink.done
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			for _, n := range m.Nodes() {
				if d := n.Stats().EgressDrops[ports.DropQueueFull].Load(); d > 0 {
					b.Fatalf("%s dropped %d", n.Name, d)
				}
			}
		})
	}
}
