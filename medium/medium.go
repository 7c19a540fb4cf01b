// Package medium is an IEEE 802.15.4 radio medium for QEMU nodes: every
// frame one node sends reaches the other nodes, as on a shared channel,
// optionally through a link matrix that loses and delays frames per
// directed pair of nodes. It is a segment of its own kind, never bridged
// to Ethernet: nodes are 802.15.4 ports (package ports/wpan), whose frames
// are PSDUs without FCS.
//
// # Datapath
//
// As in the Ethernet engine, every node has one ingress goroutine and one
// egress goroutine. The ingress goroutine reads a batch of pooled frames,
// takes one reference per receiving node and appends the frame to a batch
// per receiver: a frame heard by five nodes is shared, never copied. Each
// batch goes to the receiver's bounded queue with a non-blocking send; a
// full queue drops the batch and counts it (queue_full), so a node that
// stops reading backs up only its own queue. The egress goroutine writes
// batches with WriteFrames, after their added latency if the link matrix
// sets one (a timer heap per node releases them in order of due time).
//
// # Link matrix
//
// Links (see ReadCSV for the file format, that of net-tools' virtual-hub)
// give each directed pair a delivery probability and a latency. Each pair
// draws from its own random stream, seeded from Config.Seed and the two
// node names and advanced once per frame on that link, so a run repeats
// exactly whatever the goroutines' timing.
//
// # Link impairments
//
// SetImpairment gives a node netem-like impairments (package impair) per
// direction: "in" on what it transmits, before the fan-out; "out" on what
// it receives, after the link matrix. See impairment.go.
//
// # Counters
//
// Every node's ports.Stats keep the engine's identities:
//
//	RxFrames + RxInvalid + RxDuplicated = Forwarded + Σ IngressDrops
//	Enqueued + TxDuplicated             = TxFrames + Σ EgressDrops
//
// once the frames an impairment holds have left it. A frame sent while
// there is no other node counts as filtered at ingress. A frame the link
// matrix loses on its way to a receiver counts on the receiver, in
// Enqueued and as an egress drop with reason link_loss; the sender still
// counts it as Forwarded: it went on the air. The Duplicated counters are
// the extra copies an impairment's duplicate= made.
package medium

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

// SlotSize is the frame slot of the medium's pool: a 127-byte PSDU and a
// spare byte.
const SlotSize = 128

// DefaultQueueLen is the most frames waiting for one node by default.
const DefaultQueueLen = 512

// maxBatch bounds every batch: what one ReadFrames call fills and what one
// queue entry holds.
const maxBatch = 64

// egressGather is the most frames one WriteFrames call carries.
const egressGather = 4 * maxBatch

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("medium closed")

// Config sets up a Medium. The zero value is ready to use.
type Config struct {
	// QueueLen is the most frames waiting for one node, delayed ones
	// included; more are dropped as queue_full. Default DefaultQueueLen.
	QueueLen int
	// Links is the link matrix. Nil: every frame reaches every other node
	// at once.
	Links *Links
	// Seed seeds the link matrix's random streams. Two runs with the same
	// Seed, Links and frames lose the same frames.
	Seed uint64
	// Logger receives lifecycle messages, never one per frame. Default:
	// discard.
	Logger *slog.Logger
}

// A Medium carries frames between attached nodes. It is safe for
// concurrent use.
type Medium struct {
	cfg     Config
	log     *slog.Logger
	pool    *frame.Pool
	batches batchPool
	start   time.Time // the medium's clock starts here: due times are nanoseconds since

	mu        sync.Mutex // guards the fields below it and publishing table
	closed    bool
	byName    map[string]*Node
	listeners map[string]ports.Listener
	links     *Links                 // nil until a matrix is set
	states    map[pairKey]*linkState // random streams and settings per directed pair; kept across detach

	table   atomic.Pointer[table]
	capture atomic.Pointer[capturer]
	capMu   sync.Mutex // serialises Capture and its stop
	recs    recSet     // record captures (CaptureRecords)
	wg      sync.WaitGroup
	done    chan struct{}
}

// A table is an immutable snapshot of the attached nodes, loaded once per
// batch. out[i][j] is the link from nodes[i] to nodes[j]; out is nil when
// there is no link matrix.
type table struct {
	nodes []*Node
	out   [][]*linkState
}

// New returns a Medium with no nodes.
func New(cfg Config) *Medium {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Medium{
		cfg:       cfg,
		log:       cfg.Logger,
		pool:      frame.NewPool(0, SlotSize),
		batches:   make(batchPool, 1024),
		start:     time.Now(),
		byName:    make(map[string]*Node),
		listeners: make(map[string]ports.Listener),
		states:    make(map[pairKey]*linkState),
		done:      make(chan struct{}),
	}
	if cfg.Links != nil {
		m.links = cfg.Links.clone()
	}
	m.table.Store(&table{})
	return m
}

// now is the medium's monotonic clock.
func (m *Medium) now() int64 { return int64(time.Since(m.start)) }

// A Node is a port attached to the medium. Its exported fields never
// change after Attach.
type Node struct {
	Name  string
	Since time.Time

	p     ports.Port
	stats *ports.Stats

	// queue carries batches to the egress goroutine. Ingress goroutines
	// send without blocking; detach closes it once none can send any more
	// (after the grace period). Its capacity is QueueLen batches, so the
	// frame limit (queued) always binds first.
	queue     chan *batch
	queued    atomic.Int64 // frames in queue or waiting out their latency
	highWater atomic.Int64

	// forwarding is odd while the node's ingress goroutine forwards a
	// batch against a table snapshot; detach waits for it to move on.
	forwarding atomic.Uint64

	// in and out are the node's link impairments (SetImpairment); pacers
	// tracks in's pacer goroutine, and reserved the pool slots their lines
	// may pin (guarded by Medium.mu).
	in       impair.Inbound
	fw       *forwarder // the ingress goroutine's and the in-pacer's, under in's lock
	out      impair.Direction
	pacers   sync.WaitGroup
	reserved int

	detaching  atomic.Bool
	closing    chan struct{} // closed when detaching starts
	readerDone chan struct{}
	writerDone chan struct{}
}

// Stats returns the node's counters.
func (n *Node) Stats() *ports.Stats { return n.stats }

// Port returns the node's port.
func (n *Node) Port() ports.Port { return n.p }

// Queue returns the frames waiting for the node and the most ever.
func (n *Node) Queue() (depth, highWater int64) { return n.queued.Load(), n.highWater.Load() }

func (n *Node) noteDepth(d int64) {
	for {
		hw := n.highWater.Load()
		if d <= hw || n.highWater.CompareAndSwap(hw, d) {
			return
		}
	}
}

func (m *Medium) reserve() int { return m.cfg.QueueLen + 2*maxBatch }

// Attach adds a port as a node under a unique name and starts carrying
// its frames. The medium owns p from now on and closes it on Detach.
func (m *Medium) Attach(name string, p ports.Port) (*Node, error) {
	return m.AttachWith(name, p, impair.Link{})
}

// AttachWith is Attach with link impairments from the first frame on
// (see SetImpairment).
func (m *Medium) AttachWith(name string, p ports.Port, imp impair.Link) (*Node, error) {
	if err := validateLink(name, imp); err != nil {
		p.Close()
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		p.Close()
		return nil, ErrClosed
	}
	if _, dup := m.byName[name]; dup {
		p.Close()
		return nil, fmt.Errorf("attach %s: a node with this name exists", name)
	}
	n := &Node{
		Name: name, Since: time.Now(),
		p: p, stats: p.Counters(),
		queue:      make(chan *batch, m.cfg.QueueLen),
		closing:    make(chan struct{}),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	n.fw = &forwarder{m: m, node: n, rel: releaser{pool: m.pool, free: make([]*frame.Frame, 0, maxBatch)}}
	n.in.Init(maxBatch, n.fw.forward)
	m.pool.Reserve(m.reserve())
	if err := m.impairLocked(n, imp); err != nil { // validated: cannot fail
		m.pool.Reserve(-m.reserve())
		p.Close()
		return nil, err
	}
	m.byName[name] = n
	m.publishLocked(append(slices.Clone(m.table.Load().nodes), n))
	m.wg.Go(func() { m.ingress(n) })
	m.wg.Go(func() { m.egress(n) })
	m.log.Info("node attached", "node", name)
	return n, nil
}

// publishLocked builds and publishes a table of nodes, with the link
// states of every pair if there is a matrix.
func (m *Medium) publishLocked(nodes []*Node) {
	t := &table{nodes: nodes}
	if m.links != nil {
		t.out = make([][]*linkState, len(nodes))
		for i, a := range nodes {
			t.out[i] = make([]*linkState, len(nodes))
			for j, b := range nodes {
				if i != j {
					t.out[i][j] = m.stateLocked(a.Name, b.Name)
				}
			}
		}
	}
	m.table.Store(t)
}

// AttachListener accepts connections on l; each becomes a node named
// NAME/1, NAME/2, … that leaves when its connection ends. The medium owns
// l and closes it on Close.
func (m *Medium) AttachListener(name string, l ports.Listener) error {
	return m.AttachListenerWith(name, l, impair.Link{})
}

// AttachListenerWith is AttachListener with link impairments for every
// node it accepts.
func (m *Medium) AttachListenerWith(name string, l ports.Listener, imp impair.Link) error {
	if err := validateLink(name, imp); err != nil {
		l.Close()
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		l.Close()
		return ErrClosed
	}
	if _, dup := m.listeners[name]; dup {
		l.Close()
		return fmt.Errorf("listen %s: a listener with this name exists", name)
	}
	m.listeners[name] = l
	m.wg.Go(func() { m.acceptLoop(name, l, imp) })
	m.log.Info("listening", "node", name, "addr", l.Addr())
	return nil
}

func (m *Medium) acceptLoop(name string, l ports.Listener, imp impair.Link) {
	backoff := 10 * time.Millisecond
	for seq := 1; ; {
		p, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept failed", "node", name, "err", err)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Second)
				continue
			case <-m.done:
				return
			}
		}
		backoff = 10 * time.Millisecond
		p.Counters().Connects.Add(1)
		if _, err := m.AttachWith(fmt.Sprintf("%s/%d", name, seq), p, imp); err != nil {
			m.log.Warn("accepted connection not attached", "node", name, "err", err)
		}
		seq++
	}
}

// Detach removes a node by name, closes its port and waits until its
// goroutines are gone. Frames still queued to it are dropped as link_down.
func (m *Medium) Detach(name string) error {
	m.mu.Lock()
	n, ok := m.byName[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("detach %s: no such node", name)
	}
	return m.detach(n, false)
}

func (m *Medium) detach(n *Node, fromIngress bool) error {
	if !n.detaching.CompareAndSwap(false, true) {
		if !fromIngress {
			<-n.readerDone
			<-n.writerDone
		}
		return nil
	}
	close(n.closing)
	m.mu.Lock()
	old := m.table.Load()
	nodes := make([]*Node, 0, len(old.nodes))
	for _, q := range old.nodes {
		if q != n {
			nodes = append(nodes, q)
		}
	}
	m.publishLocked(nodes)
	delete(m.byName, n.Name)
	reserved := n.reserved
	n.reserved = 0
	m.mu.Unlock()

	err := n.p.Close()
	n.stats.LinkUp.Store(false)
	m.graceWait(old)
	close(n.queue) // nobody can send now: the egress goroutine drains and exits
	m.pool.Reserve(-m.reserve())
	if !fromIngress {
		<-n.readerDone
	}
	<-n.writerDone
	n.pacers.Wait()
	m.flushLines(n) // what the ingress goroutine pushed after the pacer stopped, and out's
	m.pool.Reserve(-reserved)
	m.log.Info("node detached", "node", n.Name)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("detach %s: %w", n.Name, err)
	}
	return nil
}

// graceWait returns once every ingress goroutine that might have loaded
// the table t has finished the batch it was forwarding.
func (m *Medium) graceWait(t *table) {
	for _, q := range t.nodes {
		s := q.forwarding.Load()
		if s%2 == 0 {
			continue
		}
		for q.forwarding.Load() == s {
			runtime.Gosched()
			time.Sleep(10 * time.Microsecond)
		}
	}
}

// Nodes returns the attached nodes in attach order.
func (m *Medium) Nodes() []*Node { return slices.Clone(m.table.Load().nodes) }

// Node returns an attached node by name.
func (m *Medium) Node(name string) (*Node, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.byName[name]
	return n, ok
}

// Close stops accepting, detaches every node and stops every capture.
func (m *Medium) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.done)
	ls := m.listeners
	m.listeners = nil
	m.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, n := range m.Nodes() {
		m.detach(n, false)
	}
	m.stopCapture()
	for _, c := range m.RecCaptures() {
		c.Close()
	}
	m.wg.Wait()
	return nil
}
