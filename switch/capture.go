package engine

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
type Direction uint8

const (
	Inbound  Direction = 1 // received from the port's peer
	Outbound Direction = 2 // written to the port's peer
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "in"
	case Outbound:
		return "out"
	}
	return "unknown"
}

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
type CaptureStats struct {
	Frames uint64 // frames copied into the buffer
	Bytes  uint64 // their captured bytes
	Drops  uint64 // frames lost because the buffer was full
}

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

	e       *Engine
	all     bool
	name    string // the selected port, or the listener whose connections are selected
	prefix  bool   // select NAME/… instead of NAME
	snap    int
	notify  chan struct{} // capacity 1: a record arrived
	done    chan struct{} // closed by Close
	closeMu sync.Once

	mu     sync.Mutex // guards everything below
	closed bool
	stats  CaptureStats

	// arena holds the frame bytes, a ring addressed by ever-growing offsets:
	// [head, tail) is in use. A record never wraps: when it does not fit
	// before the end, the gap is skipped and it starts at 0.
	arena      []byte
	head, tail uint64
	// recs is a ring of records: [rhead, rtail) are buffered.
	recs         []capRec
	rhead, rtail uint64
	// lent is what the last Read handed out: freed by the next Read.
	lentN   uint64
	lentEnd uint64
}

type capRec struct {
	ts     int64 // unix nanoseconds
	port   *Port
	end    uint64 // arena tail after this record
	off    uint32 // start of data in arena
	n      uint32 // captured bytes
	length uint32 // length on the wire
	dir    Direction
}

// captureSet is the engine's list of running captures.
type captureSet struct {
	mu   sync.Mutex // serialises changes to list
	next uint64
	list atomic.Pointer[[]*Capture] // immutable; nil while nobody captures
}

// tap offers a batch to every running capture. It is the datapath's only
// contact with captures: one atomic load when there are none.
func (s *captureSet) tap(p *Port, fs []*frame.Frame, d Direction) {
	if s.list.Load() != nil {
		s.offer(p, fs, d)
	}
}

func (s *captureSet) offer(p *Port, fs []*frame.Frame, d Direction) {
	l := s.list.Load()
	if l == nil || len(fs) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	for _, c := range *l {
		if c.selects(p.Name) {
			c.add(p, fs, d, ts)
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
		Since:  e.cfg.Now(),
		e:      e,
		snap:   sel.SnapLen,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
		arena:  make([]byte, sel.Buffer),
		recs:   make([]capRec, max(sel.Buffer/128, 64)),
	}
	if c.snap == 0 {
		c.snap = frame.MaxSlotSize
	}
	switch sel.Port {
	case "", "all":
		c.all = true
	default:
		c.name = sel.Port
		if _, ok := e.Port(sel.Port); !ok {
			if !slices.ContainsFunc(e.Listeners(), func(l ListenerInfo) bool { return l.Name == sel.Port }) {
				return nil, fmt.Errorf("capture %s: %w", sel.Port, ErrNoPort)
			}
			c.prefix = true
		}
	}

	s := &e.caps
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	c.ID = s.next
	var l []*Capture
	if old := s.list.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, c)
	s.list.Store(&l)
	return c, nil
}

// NewCaptureID takes a capture ID from the sequence Capture uses, for
// captures run elsewhere (an 802.15.4 medium's) that are listed with the
// engine's.
func (e *Engine) NewCaptureID() uint64 {
	s := &e.caps
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// Captures returns the running captures.
func (e *Engine) Captures() []*Capture {
	if l := e.caps.list.Load(); l != nil {
		return slices.Clone(*l)
	}
	return nil
}

// Selection is what the capture was started with: a port or listener
// name, or "all".
func (c *Capture) Selection() string {
	if c.all {
		return "all"
	}
	return c.name
}

// Ports returns the attached ports the capture selects now.
func (c *Capture) Ports() []*Port {
	var ps []*Port
	for _, p := range c.e.Ports() {
		if c.selects(p.Name) {
			ps = append(ps, p)
		}
	}
	return ps
}

func (c *Capture) selects(name string) bool {
	switch {
	case c.all:
		return true
	case c.prefix:
		return len(name) > len(c.name) && name[len(c.name)] == '/' && strings.HasPrefix(name, c.name)
	}
	return name == c.name
}

// Stats returns the capture's counters.
func (c *Capture) Stats() CaptureStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// add copies fs into the buffer, or counts them as dropped.
func (c *Capture) add(p *Port, fs []*frame.Frame, d Direction, ts int64) {
	size := uint64(len(c.arena))
	added := false
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for _, f := range fs {
		b := f.Bytes()
		n := min(len(b), c.snap)
		need := uint64(n+7) &^ 7 // 8-byte aligned records: no two share a word
		pos := c.tail % size
		skip := uint64(0)
		if pos+need > size {
			skip = size - pos
		}
		if c.rtail-c.rhead == uint64(len(c.recs)) || c.tail+skip+need-c.head > size {
			c.stats.Drops++
			continue
		}
		off := (pos + skip) % size
		copy(c.arena[off:], b[:n])
		c.tail += skip + need
		c.recs[c.rtail%uint64(len(c.recs))] = capRec{
			ts: ts, port: p, end: c.tail, off: uint32(off), n: uint32(n), length: uint32(len(b)), dir: d,
		}
		c.rtail++
		c.stats.Frames++
		c.stats.Bytes += uint64(n)
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
// many as are there. The records' Data stays valid until the next Read,
// which frees it. After Close, Read returns what is still buffered, then
// io.EOF; when ctx ends first, its error.
func (c *Capture) Read(ctx context.Context, dst []CaptureRecord) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	c.rhead += c.lentN
	if c.lentN > 0 {
		c.head = c.lentEnd
	}
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
	n := min(uint64(len(dst)), c.rtail-c.rhead)
	for i := range n {
		r := &c.recs[(c.rhead+i)%uint64(len(c.recs))]
		dst[i] = CaptureRecord{
			Time:   time.Unix(0, r.ts),
			Port:   r.port,
			Dir:    r.dir,
			Length: int(r.length),
			Data:   c.arena[r.off : r.off+r.n : r.off+r.n],
		}
		r.port = nil
		c.lentEnd = r.end
	}
	c.lentN = n
	c.mu.Unlock()
	return int(n), nil
}

// Close stops the capture: no more frames are added, and Read returns what
// is buffered, then io.EOF. It is safe to call twice.
func (c *Capture) Close() error {
	c.closeMu.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.done)

		s := &c.e.caps
		s.mu.Lock()
		defer s.mu.Unlock()
		old := s.list.Load()
		if old == nil {
			return
		}
		l := slices.DeleteFunc(slices.Clone(*old), func(x *Capture) bool { return x == c })
		if len(l) == 0 {
			s.list.Store(nil)
		} else {
			s.list.Store(&l)
		}
	})
	return nil
}
