package medium

import (
	"context"
	"errors"
	"fmt"
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

	m   *Medium
	sel capring.Selection
	// ring holds a slot's worth of arena per record, and one more for the
	// gap where it wraps: it drops only when slots records are buffered.
	ring *capring.Ring[string]
}

// recSet is a medium's list of running record captures.
type recSet struct{ capring.Set[*RecCapture] }

// tap offers a batch to every running record capture: one atomic load
// when there are none.
func (s *recSet) tap(n *Node, fs []*frame.Frame, d Direction) {
	if l := s.Active(); l != nil {
		offerRecs(l, n, fs, d)
	}
}

func offerRecs(l []*RecCapture, n *Node, fs []*frame.Frame, d Direction) {
	if len(fs) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	for _, c := range l {
		if c.sel.Selects(n.Name) {
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
		c.sel.All = true
	default:
		c.sel.Name = node
		if _, ok := m.Node(node); !ok {
			m.mu.Lock()
			_, ok = m.listeners[node]
			m.mu.Unlock()
			if !ok {
				return nil, fmt.Errorf("capture %s: %w", node, ErrNoNode)
			}
			c.sel.Prefix = true
		}
	}
	c.ID = m.recs.NextID()
	m.recs.Add(c)
	return c, nil
}

// RecCaptures returns the running record captures.
func (m *Medium) RecCaptures() []*RecCapture { return m.recs.List() }

// Selection is what the capture was started with: a node or listener
// name, or "all".
func (c *RecCapture) Selection() string { return c.sel.String() }

// Nodes returns the attached nodes the capture selects now.
func (c *RecCapture) Nodes() []*Node {
	var ns []*Node
	for _, n := range c.m.Nodes() {
		if c.sel.Selects(n.Name) {
			ns = append(ns, n)
		}
	}
	return ns
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
	if c.ring.Close() {
		c.m.recs.Remove(c)
	}
	return nil
}
