package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/frame/capring"
)

// Capture taps
//
// A capture copies the frames of the ports it selects, as they are received
// (Inbound, before forwarding) and as they are written (Outbound, after
// WriteFrames succeeded), into a bounded buffer of its own. The datapath
// never waits for a reader and never lends it a pooled frame: when the
// buffer is full, frames are dropped and counted (CaptureStats.Drops).
//
// While nobody captures, each batch costs one atomic load at ingress and
// one at egress (captureSet.tap, which inlines). Captures are published as
// an immutable list behind an atomic pointer, like the port table; the list
// is nil when empty.

// DefaultCaptureBuffer is the frame bytes a capture holds for a slow reader
// before it drops.
const DefaultCaptureBuffer = 4 << 20

// ErrNoPort is wrapped by Capture when the selection names no port or
// listener.
var ErrNoPort = errors.New("no such port")

// A Direction says which way a captured frame crossed its port. The values
// are pcapng's epb_flags direction bits.
type Direction = capring.Direction

const (
	Inbound  = capring.Inbound  // received from the port's peer
	Outbound = capring.Outbound // written to the port's peer
)

// CaptureSelect chooses what a capture records.
type CaptureSelect struct {
	// Port is a port name, the name of a listener (every connection it
	// accepted, NAME/1, NAME/2, …) or "all" (also ""): every port, including
	// ports attached later. A named port or listener that leaves and comes
	// back under the same name is captured again.
	Port string
	// Buffer is how many bytes of frames the capture holds for its reader
	// before it drops (default DefaultCaptureBuffer).
	Buffer int
	// SnapLen cuts each frame to this many bytes (0: whole frames).
	SnapLen int
}

// CaptureStats counts what a capture buffered and what it dropped.
type CaptureStats = capring.Stats

// A CaptureRecord is one captured frame.
type CaptureRecord struct {
	Time   time.Time
	Port   *Port // Name, ID and Kind of the port; it may have left since
	Dir    Direction
	Length int    // the frame's length on the wire
	Data   []byte // its first SnapLen bytes; valid until the next Read
}

// A Capture is a running capture. Read it from one goroutine; Close it
// when done. Its other methods are safe for concurrent use.
type Capture struct {
	ID    uint64
	Since time.Time

	e    *Engine
	sel  capring.Selection
	ring *capring.Ring[*Port]
}

// captureSet is the engine's list of running captures.
type captureSet struct{ capring.Set[*Capture] }

// tap offers a batch to every running capture. It is the datapath's only
// contact with captures: one atomic load when there are none.
func (s *captureSet) tap(p *Port, fs []*frame.Frame, d Direction) {
	if l := s.Active(); l != nil {
		offer(l, p, fs, d)
	}
}

func offer(l []*Capture, p *Port, fs []*frame.Frame, d Direction) {
	if len(fs) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	for _, c := range l {
		if c.sel.Selects(p.Name) {
			c.ring.Add(p, fs, d, ts)
		}
	}
}

// Capture starts a capture. It fails, wrapping ErrNoPort, when sel.Port
// names neither a port nor a listener.
func (e *Engine) Capture(sel CaptureSelect) (*Capture, error) {
	if sel.Buffer == 0 {
		sel.Buffer = DefaultCaptureBuffer
	}
	if sel.Buffer < frame.MaxSlotSize || sel.Buffer > 1<<30 {
		return nil, fmt.Errorf("capture: buffer %d bytes outside %d..%d", sel.Buffer, frame.MaxSlotSize, 1<<30)
	}
	if sel.SnapLen < 0 {
		return nil, fmt.Errorf("capture: negative snap length %d", sel.SnapLen)
	}
	c := &Capture{
		Since: e.cfg.Now(),
		e:     e,
		ring:  capring.New[*Port](sel.Buffer, max(sel.Buffer/128, 64), sel.SnapLen),
	}
	switch sel.Port {
	case "", "all":
		c.sel.All = true
	default:
		c.sel.Name = sel.Port
		if _, ok := e.Port(sel.Port); !ok {
			if !slices.ContainsFunc(e.Listeners(), func(l ListenerInfo) bool { return l.Name == sel.Port }) {
				return nil, fmt.Errorf("capture %s: %w", sel.Port, ErrNoPort)
			}
			c.sel.Prefix = true
		}
	}
	c.ID = e.caps.NextID()
	e.caps.Add(c)
	return c, nil
}

// NewCaptureID takes a capture ID from the sequence Capture uses, for
// captures run elsewhere (an 802.15.4 medium's) that are listed with the
// engine's.
func (e *Engine) NewCaptureID() uint64 { return e.caps.NextID() }

// Captures returns the running captures.
func (e *Engine) Captures() []*Capture { return e.caps.List() }

// Selection is what the capture was started with: a port or listener
// name, or "all".
func (c *Capture) Selection() string { return c.sel.String() }

// Ports returns the attached ports the capture selects now.
func (c *Capture) Ports() []*Port {
	var ps []*Port
	for _, p := range c.e.Ports() {
		if c.sel.Selects(p.Name) {
			ps = append(ps, p)
		}
	}
	return ps
}

// Stats returns the capture's counters.
func (c *Capture) Stats() CaptureStats { return c.ring.Stats() }

// Read waits until at least one frame is buffered and fills dst with as
// many as are there. The records' Data stays valid until the next Read,
// which frees it. After Close, Read returns what is still buffered, then
// io.EOF; when ctx ends first, its error.
func (c *Capture) Read(ctx context.Context, dst []CaptureRecord) (int, error) {
	return c.ring.ReadFunc(ctx, len(dst), func(i int, r capring.Record[*Port]) {
		dst[i] = CaptureRecord{Time: r.Time, Port: r.Src, Dir: r.Dir, Length: r.Length, Data: r.Data}
	})
}

// Close stops the capture: no more frames are added, and Read returns what
// is buffered, then io.EOF. It is safe to call twice.
func (c *Capture) Close() error {
	if c.ring.Close() {
		c.e.caps.Remove(c)
	}
	return nil
}
