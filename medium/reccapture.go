package medium

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// Record captures
//
// Besides the pcap writer (Capture), a medium serves captures as records,
// in the shape of the Ethernet engine's captures (package switch): each
// RecCapture copies the frames of the nodes it selects into a bounded
// buffer of its own, as they enter the medium (Inbound, before they are
// forwarded) and as they are written to a node (Outbound, after
// WriteFrames took them). The datapath never waits for a reader: when the
// buffer is full, frames are dropped and counted (RecStats.Drops).
//
// While nobody captures, each batch costs one atomic load at ingress and
// one at egress. Captures are published as an immutable list behind an
// atomic pointer; the list is nil when empty.

// DefaultRecBuffer is the frame bytes a record capture holds for a slow
// reader before it drops.
const DefaultRecBuffer = 1 << 20

// ErrNoNode is wrapped by CaptureRecords when the selection names neither
// a node nor a listener.
var ErrNoNode = errors.New("no such node")

// A Direction says which way a captured frame crossed its node. The values
// are pcapng's epb_flags direction bits.
type Direction uint8

const (
	Inbound  Direction = 1 // received from the node's peer
	Outbound Direction = 2 // written to the node's peer
)

// RecStats counts what a record capture buffered and what it dropped.
type RecStats struct {
	Frames uint64 // frames copied into the buffer
	Bytes  uint64 // their captured bytes
	Drops  uint64 // frames lost because the buffer was full
}

// A Record is one captured frame: a PSDU without FCS.
type Record struct {
	Time   time.Time
	Node   string // the node's name
	Dir    Direction
	Length int    // the frame's length
	Data   []byte // its bytes; valid until the next Read
}

// A RecCapture is a running record capture. Read it from one goroutine;
// Close it when done. Its other methods are safe for concurrent use.
type RecCapture struct {
	ID    uint64
	Since time.Time

	m       *Medium
	all     bool
	name    string // the selected node, or the listener whose nodes are selected
	prefix  bool   // select NAME/… instead of NAME
	notify  chan struct{}
	done    chan struct{}
	closeMu sync.Once

	mu     sync.Mutex // guards everything below
	closed bool
	stats  RecStats
	// arena holds the frame bytes in fixed slots of SlotSize, one per
	// record: recs[i%len] uses arena[(i%len)*SlotSize:].
	arena        []byte
	recs         []recEntry
	rhead, rtail uint64
	lentN        uint64 // records the last Read handed out: freed by the next Read
}

type recEntry struct {
	ts   int64
	node string
	n    uint8
	dir  Direction
}

// recSet is a medium's list of running record captures.
type recSet struct {
	mu   sync.Mutex
	next uint64
	list atomic.Pointer[[]*RecCapture] // immutable; nil while nobody captures
}

// tap offers a batch to every running record capture: one atomic load
// when there are none.
func (s *recSet) tap(n *Node, fs []*frame.Frame, d Direction) {
	if s.list.Load() != nil {
		s.offer(n, fs, d)
	}
}

func (s *recSet) offer(n *Node, fs []*frame.Frame, d Direction) {
	l := s.list.Load()
	if l == nil || len(fs) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	for _, c := range *l {
		if c.selects(n.Name) {
			c.add(n.Name, fs, d, ts)
		}
	}
}

// CaptureRecords starts a record capture of a node, of every node a
// listener accepted (NAME/1, NAME/2, …) or, with "all" or "", of every
// node, including nodes attached later. buffer is the frame bytes held
// for the reader before frames are dropped (0: DefaultRecBuffer). It
// fails, wrapping ErrNoNode, when node names neither a node nor a
// listener.
func (m *Medium) CaptureRecords(node string, buffer int) (*RecCapture, error) {
	if buffer == 0 {
		buffer = DefaultRecBuffer
	}
	if buffer < SlotSize || buffer > 1<<30 {
		return nil, fmt.Errorf("capture: buffer %d bytes outside %d..%d", buffer, SlotSize, 1<<30)
	}
	slots := buffer / SlotSize
	c := &RecCapture{
		Since:  time.Now(),
		m:      m,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		arena:  make([]byte, slots*SlotSize),
		recs:   make([]recEntry, slots),
	}
	switch node {
	case "", "all":
		c.all = true
	default:
		c.name = node
		if _, ok := m.Node(node); !ok {
			m.mu.Lock()
			_, ok = m.listeners[node]
			m.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("capture %s: %w", node, ErrNoNode)
			}
			c.prefix = true
		}
	}
	s := &m.recs
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	c.ID = s.next
	var l []*RecCapture
	if old := s.list.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, c)
	s.list.Store(&l)
	return c, nil
}

// RecCaptures returns the running record captures.
func (m *Medium) RecCaptures() []*RecCapture {
	if l := m.recs.list.Load(); l != nil {
		return slices.Clone(*l)
	}
	return nil
}

// Selection is what the capture was started with: a node or listener
// name, or "all".
func (c *RecCapture) Selection() string {
	if c.all {
		return "all"
	}
	return c.name
}

// Nodes returns the attached nodes the capture selects now.
func (c *RecCapture) Nodes() []*Node {
	var ns []*Node
	for _, n := range c.m.Nodes() {
		if c.selects(n.Name) {
			ns = append(ns, n)
		}
	}
	return ns
}

func (c *RecCapture) selects(name string) bool {
	switch {
	case c.all:
		return true
	case c.prefix:
		return len(name) > len(c.name) && name[len(c.name)] == '/' && strings.HasPrefix(name, c.name)
	}
	return name == c.name
}

// Stats returns the capture's counters.
func (c *RecCapture) Stats() RecStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// add copies fs into the buffer, or counts them as dropped.
func (c *RecCapture) add(node string, fs []*frame.Frame, d Direction, ts int64) {
	size := uint64(len(c.recs))
	added := false
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for _, f := range fs {
		// Slots lent to the reader stay in use until its next Read.
		if c.rtail-c.rhead == size {
			c.stats.Drops++
			continue
		}
		i := c.rtail % size
		b := f.Bytes()
		k := copy(c.arena[i*SlotSize:(i+1)*SlotSize], b)
		c.recs[i] = recEntry{ts: ts, node: node, n: uint8(k), dir: d}
		c.rtail++
		c.stats.Frames++
		c.stats.Bytes += uint64(k)
		added = true
	}
	c.mu.Unlock()
	if added {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
}

// Read waits until at least one frame is buffered and fills dst with as
// many as are there. The records' Data stays valid until the next Read.
// After Close, Read returns what is still buffered, then io.EOF; when ctx
// ends first, its error.
func (c *RecCapture) Read(ctx context.Context, dst []Record) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	c.rhead += c.lentN
	c.lentN = 0
	for c.rtail == c.rhead {
		if c.closed {
			c.mu.Unlock()
			return 0, io.EOF
		}
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-c.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		c.mu.Lock()
	}
	size := uint64(len(c.recs))
	n := min(uint64(len(dst)), c.rtail-c.rhead)
	for j := range n {
		i := (c.rhead + j) % size
		r := &c.recs[i]
		off := i * SlotSize
		dst[j] = Record{
			Time:   time.Unix(0, r.ts),
			Node:   r.node,
			Dir:    r.dir,
			Length: int(r.n),
			Data:   c.arena[off : off+uint64(r.n) : off+uint64(r.n)],
		}
	}
	c.lentN = n
	c.mu.Unlock()
	return int(n), nil
}

// Close stops the capture: no more frames are added, and Read returns
// what is buffered, then io.EOF. It is safe to call twice.
func (c *RecCapture) Close() error {
	c.closeMu.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)

		s := &c.m.recs
		s.mu.Lock()
		defer s.mu.Unlock()
		old := s.list.Load()
		if old == nil {
			return
		}
		l := slices.DeleteFunc(slices.Clone(*old), func(x *RecCapture) bool { return x == c })
		if len(l) == 0 {
			s.list.Store(nil)
		} else {
			s.list.Store(&l)
		}
	})
	return nil
}
