package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

// A Port is a port attached to the engine: the ports.Port plus the engine's
// state for it. Its exported fields never change after Attach.
type Port struct {
	ID    uint16
	Name  string
	Kind  string // the spec kind, e.g. "stream-listen"; a metrics label
	Since time.Time

	p      ports.Port
	stats  *ports.Stats
	policy atomic.Pointer[policy] // VLANs and port security (portconfig.go)

	// queue carries batches to the egress goroutine. Ingress goroutines send
	// without blocking; Detach closes it once no ingress goroutine can send
	// any more (after the grace period). Its capacity is QueueLen batches,
	// so the frame limit (queued) always binds first.
	queue     chan *batch
	queued    atomic.Int64 // frames in queue
	highWater atomic.Int64 // most frames ever in queue

	// Senders waiting for room in queue (backpressure.go).
	roomWaiters atomic.Int32
	room        chan struct{} // wake-up tokens from the egress goroutine

	// tw is p as a ports.TryWriter, nil if it is not one. wmu serialises
	// its writing methods: the egress goroutine holds it around each write,
	// ingress goroutines writing directly (fast path) only take it with
	// TryLock. direct counts the frames they wrote.
	tw     ports.TryWriter
	wmu    sync.Mutex
	direct atomic.Uint64

	// forwarding is odd while this port's ingress goroutine forwards a batch
	// against a port-table snapshot; Detach waits for it to move on.
	forwarding atomic.Uint64

	latency Latency

	// in and out are the port's link impairments (impairment.go); pacers
	// tracks in's pacer goroutine, and reserved the pool slots their lines
	// may hold (guarded by Engine.mu).
	in       impair.Inbound
	fw       *forwarder // the ingress goroutine's and the in-pacer's, under in's lock
	out      impair.Direction
	pacers   sync.WaitGroup
	reserved int

	detaching  atomic.Bool
	closing    chan struct{} // closed when detaching starts: wakes an ingress waiting for buffers
	readerDone chan struct{}
	writerDone chan struct{}
}

// Stats returns the port's counters.
func (p *Port) Stats() *ports.Stats { return p.stats }

// Queue returns the frames waiting in the egress queue and the most ever.
func (p *Port) Queue() (depth, highWater int64) { return p.queued.Load(), p.highWater.Load() }

// DirectWrites is how many of the frames written to the port (TxFrames)
// the receiving port's goroutine wrote itself, without the queue hop
// (forwarder.direct).
func (p *Port) DirectWrites() uint64 { return p.direct.Load() }

// Latency returns the port's forwarding-latency histogram.
func (p *Port) Latency() LatencySnapshot { return p.latency.Snapshot() }

// Underlying returns the port implementation, for optional interfaces.
func (p *Port) Underlying() ports.Port { return p.p }

func (p *Port) noteDepth(d int64) {
	for {
		hw := p.highWater.Load()
		if d <= hw || p.highWater.CompareAndSwap(hw, d) {
			return
		}
	}
}
