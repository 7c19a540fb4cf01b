package medium

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/frame/capring"
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
type Direction = capring.Direction

const (
	Inbound  = capring.Inbound  // received from the node's peer
	Outbound = capring.Outbound // written to the node's peer
)

// RecStats counts what a record capture buffered and what it dropped.
type RecStats = capring.Stats

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

	m      *Medium
	all    bool
	name   string // the selected node, or the listener whose nodes are selected
	prefix bool   // select NAME/… instead of NAME
	// ring holds a slot's worth of arena per record, and one more for the
	// gap where it wraps: it drops only when slots records are buffered.
	ring *capring.Ring[string]
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
			c.ring.Add(n.Name, fs, d, ts)
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
		Since: time.Now(),
		m:     m,
		ring:  capring.New[string]((slots+1)*SlotSize, slots, SlotSize),
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
func (c *RecCapture) Stats() RecStats { return c.ring.Stats() }

// Read waits until at least one frame is buffered and fills dst with as
// many as are there. The records' Data stays valid until the next Read.
// After Close, Read returns what is still buffered, then io.EOF; when ctx
// ends first, its error.
func (c *RecCapture) Read(ctx context.Context, dst []Record) (int, error) {
	return c.ring.ReadFunc(ctx, len(dst), func(i int, r capring.Record[string]) {
		dst[i] = Record{Time: r.Time, Node: r.Src, Dir: r.Dir, Length: r.Length, Data: r.Data}
	})
}

// Close stops the capture: no more frames are added, and Read returns
// what is buffered, then io.EOF. It is safe to call twice.
func (c *RecCapture) Close() error {
	if !c.ring.Close() {
		return nil
	}
	s := &c.m.recs
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.list.Load()
	if old == nil {
		return nil
	}
	l := slices.DeleteFunc(slices.Clone(*old), func(x *RecCapture) bool { return x == c })
	if len(l) == 0 {
		s.list.Store(nil)
	} else {
		s.list.Store(&l)
	}
	return nil
}
