// Package packet implements a port that attaches to an existing network
// interface with an AF_PACKET socket: the TAP a Zephyr native_sim holds
// (zeth), the enx… interface of a board doing USB CDC-ECM, or a veth.
//
// # Attaching
//
// Open binds a raw socket (ETH_P_ALL) to the interface in the network
// namespace of the calling thread and joins it promiscuously, by socket
// membership rather than the IFF_PROMISC flag, so the kernel undoes it when
// the socket closes. Frames the host itself transmits on the interface are
// ignored (PACKET_IGNORE_OUTGOING); frames the port writes go to the other
// side of the interface: to the process holding the TAP, the USB device,
// the veth's peer.
//
// # VLAN tags
//
// The kernel strips 802.1Q and 802.1ad tags from received frames before
// packet sockets see them, and a vlan device or a NIC may never put the tag
// in the frame at all. The port reads the tag from PACKET_AUXDATA and puts
// it back after the MAC addresses, so frames come out of ReadFrames as they
// were on the wire. Tagged frames are written as they are.
//
// # Sizes
//
// Frames longer than the interface MTU plus 18 bytes (Ethernet header and
// one tag) are dropped as oversize on the way out; the kernel refuses an
// untagged frame over MTU+14 as well, and that is counted the same way.
// Received frames longer than the frame slot are dropped as oversize, never
// delivered cut short. An interface doing GRO (or LRO) hands the socket
// coalesced frames far over the MTU, which then drop as oversize: turn it
// off (ethtool -K IFNAME gro off lro off) on a NIC or USB interface. A veth
// does GRO only when it is enabled on it or an XDP program is attached;
// TAPs do not. Likewise a veth whose far end is used by the host stack may
// carry frames with checksums left to offload; zswitch forwards them as
// they are (ethtool -K PEER tx off fixes that at the source).
//
// # The interface going away
//
// native_sim deletes and re-creates zeth when it restarts (unless zeth is
// persistent), and a USB device re-enumerates with a new ifindex. A port
// survives both: when a read or write says the device is gone, or its poll
// (Options.PollInterval) sees it missing, admin down or without carrier, it
// marks the link down (Stats.LinkUp false, Disconnects+1), drops frames
// written meanwhile as link_down and keeps ReadFrames waiting. When an
// interface of the same name is back, up and running, in the network
// namespace the port was opened in, it binds a new socket to it and counts
// a Connect. DownTime says how long the link has been down in total.
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// DefaultBatchSize is how many frames one system call moves by default.
const DefaultBatchSize = 64

// DefaultPollInterval is how often a port checks its interface by default.
const DefaultPollInterval = 200 * time.Millisecond

// maxBatch is the kernel's limit on messages per recvmmsg/sendmmsg (UIO_MAXIOV).
const maxBatch = 1024

// sockBuf is the socket buffer size a port asks for, so that a burst waits
// in the kernel instead of being dropped.
const sockBuf = 4 << 20

// overhead is what a frame may add to the MTU: an Ethernet header and one
// VLAN tag.
const overhead = 14 + 4

// Options tune a port. The zero value is ready to use.
type Options struct {
	// BatchSize is the most frames moved per system call (and per
	// ReadFrames). Default DefaultBatchSize, at most 1024.
	BatchSize int
	// PollInterval is how often the port checks that its interface still
	// exists, is up and has carrier, and while it is gone, how soon it
	// notices it back. Read and write errors trigger a check at once.
	// Default DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, maxBatch)
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// A Conn is a port attached to a network interface. ReadFrames and
// WriteFrames may run at the same time on two goroutines; Close may be
// called from any.
type Conn struct {
	ports.Stats

	name   string // "packet:zeth"
	ifname string
	batch  int
	poll   time.Duration
	log    *slog.Logger
	ns     netns.NsHandle // the namespace Open ran in: sockets are re-opened there
	ctl    int            // a socket in ns for interface ioctls, owned by the watcher after Open

	cur    atomic.Pointer[sock] // nil while the interface is missing
	maxOut atomic.Int64         // MTU + overhead

	wake chan struct{} // cap 1: the watcher tells a waiting reader cur changed
	kick chan struct{} // cap 1: the datapath asks the watcher to check now
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	closed    atomic.Bool
	closeOnce sync.Once
	errClosed error // built once, so a closed port answers without allocating

	mu        sync.Mutex // guards downSince and downTotal
	downSince time.Time  // zero while up
	downTotal time.Duration

	// Owned by the reading goroutine.
	readErrLog  time.Time
	oversizeLog time.Time
	// kernelDropLog is owned by the watcher goroutine.
	kernelDropLog time.Time

	// partialUnfixed counts frames whose offloaded checksum could not be
	// completed (not TCP or UDP over IPv4 or IPv6): they leave as they came.
	partialUnfixed atomic.Uint64
}

var _ ports.TryWriter = (*Conn)(nil)

// Open attaches a port to the interface named ifname, which must exist, in
// the network namespace of the calling thread. A caller switching
// namespaces must hold its thread (runtime.LockOSThread) across Open. The
// port keeps that namespace: after the interface disappears it looks for it
// there again.
func Open(ifname string, opt Options) (*Conn, error) {
	opt = opt.withDefaults()
	name := "packet:" + ifname
	if len(ifname) == 0 || len(ifname) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("%s: interface name must be 1 to %d bytes", name, unix.IFNAMSIZ-1)
	}
	c := &Conn{
		name:      name,
		ifname:    ifname,
		batch:     opt.BatchSize,
		poll:      opt.PollInterval,
		log:       opt.Logger,
		ctl:       -1,
		wake:      make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		errClosed: fmt.Errorf("%s: %w", name, net.ErrClosed),
	}
	if err := c.open(); err != nil {
		c.ns.Close()
		if c.ctl >= 0 {
			unix.Close(c.ctl)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c.wg.Go(c.watch)
	return c, nil
}

// open captures the namespace and attaches for the first time.
func (c *Conn) open() error {
	var err error
	if c.ns, err = currentNetns(); err != nil {
		return err
	}
	if c.ctl, err = newCtl(c.ns); err != nil {
		return err
	}
	st, err := lookup(c.ctl, c.ifname)
	if err != nil {
		return err
	}
	s, err := openSock(c.ns, c.ifname, st.index, c.batch)
	if err != nil {
		return err
	}
	c.cur.Store(s)
	c.maxOut.Store(int64(st.mtu + overhead))
	if st.running() {
		c.LinkUp.Store(true)
		c.Connects.Add(1)
	} else {
		c.downSince = time.Now()
	}
	c.log.Info("port open", "port", c.name, "ifindex", st.index, "mtu", st.mtu, "link_up", st.running())
	return nil
}

// BatchSize is the most frames one ReadFrames call fills.
func (c *Conn) BatchSize() int { return c.batch }

// String describes the port for logs: "packet:IFNAME".
func (c *Conn) String() string { return c.name }

// DownTime is how long the link has been down since Open, in total,
// including the current outage.
func (c *Conn) DownTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.downTotal
	if !c.downSince.IsZero() {
		d += time.Since(c.downSince)
	}
	return d
}

// ReadFrames waits for at least one frame and receives up to len(fs) (at
// most BatchSize) with one recvmmsg, restoring VLAN tags the kernel took
// out. Frames longer than the slot are dropped as oversize. While the
// interface is gone it waits for it to come back. It may reorder fs: the
// frames filled are fs[:n]. After Close it returns an error wrapping
// net.ErrClosed.
func (c *Conn) ReadFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	k := min(len(fs), c.batch)
	for {
		if c.closed.Load() {
			return 0, c.errClosed
		}
		s := c.cur.Load()
		if s == nil {
			select {
			case <-c.wake:
			case <-c.done:
			}
			continue
		}
		for i, f := range fs[:k] {
			s.r.SetBuf(i, f.Space())
		}
		n, err := s.r.Read(k)
		if err != nil {
			if c.closed.Load() {
				return 0, c.errClosed
			}
			c.readFailed(s, err)
			continue
		}
		if filled := c.received(s, fs[:n]); filled > 0 {
			return filled, nil
		}
	}
}

// readFailed handles a receive error on s, which is not fatal to the port:
// the interface went down or away (the watcher takes over), or the watcher
// already closed s.
func (c *Conn) readFailed(s *sock, err error) {
	if c.cur.Load() != s {
		return // replaced: read from the new socket
	}
	e, _ := err.(syscall.Errno)
	if linkGone(e) {
		c.requestCheck() // sk_err is reported once: the next read waits
		return
	}
	c.Errors.Add(1)
	if now := time.Now(); now.Sub(c.readErrLog) > logEvery {
		c.readErrLog = now
		c.log.Warn("receive failed", "port", c.name, "err", err)
	}
	c.requestCheck()
	if e == 0 || !transientRead(e) {
		// Unknown trouble with this socket: give the watcher time to
		// replace it rather than spin on it.
		select {
		case <-c.wake:
		case <-c.done:
		case <-time.After(c.poll):
		}
	}
}

// received turns the messages of one recvmmsg into frames: it drops those
// cut short, puts VLAN tags back, and moves the good frames to the front.
func (c *Conn) received(s *sock, fs []*frame.Frame) (filled int) {
	var oversize uint64
	for i, f := range fs {
		l := s.r.Len(i)
		if s.r.Truncated(i) {
			oversize++
			continue
		}
		tag, tagged, partial := auxData(s.r.Control(i))
		if tagged {
			if l < 12 || l+4 > f.Cap() {
				oversize++
				continue
			}
			b := f.Space()
			copy(b[16:l+4], b[12:l])
			binary.BigEndian.PutUint32(b[12:16], tag)
			l += 4
		}
		f.SetLen(l)
		if partial && !completeChecksum(f.Bytes()) {
			c.partialUnfixed.Add(1)
		}
		fs[filled], fs[i] = fs[i], fs[filled]
		filled++
	}
	if oversize > 0 {
		c.DropIn(ports.DropOversize, oversize)
		if now := time.Now(); now.Sub(c.oversizeLog) > logEvery {
			c.oversizeLog = now
			c.log.Warn("frames larger than a slot dropped; if the sender uses segmentation offload, turn it off: ethtool -K IFACE tso off gso off gro off",
				"port", c.name, "iface", c.ifname)
		}
	}
	return filled
}

// WriteFrames sends fs in order with one sendmmsg per BatchSize frames.
// Frames shorter than an Ethernet header (DropRunt) or longer than the MTU
// plus 18 bytes (DropOversize) are dropped, and every frame while the link
// is down (DropLinkDown), without an error. It moves the frames it sent to
// the front of fs, in order: they are fs[:n].
func (c *Conn) WriteFrames(fs []*frame.Frame) (int, error) {
	if c.closed.Load() {
		return 0, c.errClosed
	}
	maxOut := int(c.maxOut.Load())
	end := 0
	var runts, oversize uint64
	for i, f := range fs {
		switch l := f.Len(); {
		case l < 14:
			runts++
		case l > maxOut:
			oversize++
		default:
			fs[end], fs[i] = fs[i], fs[end]
			end++
		}
	}
	if runts > 0 {
		c.DropOut(ports.DropRunt, runts)
	}
	if oversize > 0 {
		c.DropOut(ports.DropOversize, oversize)
	}
	if end == 0 {
		return 0, nil
	}
	s := c.cur.Load()
	if s == nil || !c.LinkUp.Load() {
		c.DropOut(ports.DropLinkDown, uint64(end))
		return 0, nil
	}
	sent := 0
	for sent < end {
		k := min(end-sent, s.w.BatchSize())
		for j, f := range fs[sent : sent+k] {
			s.w.SetBuf(j, f.Bytes())
		}
		m, err := s.w.Write(k)
		sent += m
		if err == nil {
			continue
		}
		if c.closed.Load() {
			return sent, c.errClosed
		}
		e, _ := err.(syscall.Errno)
		switch {
		case e == unix.EMSGSIZE, e == unix.ENOBUFS:
			// Too long for the device after all (an untagged frame over
			// MTU+14), or its queue was full: drop just this one,
			// behind the frames still to send.
			if e == unix.EMSGSIZE {
				c.DropOut(ports.DropOversize, 1)
			} else {
				c.DropOut(ports.DropQueueFull, 1)
			}
			f := fs[sent]
			copy(fs[sent:end-1], fs[sent+1:end])
			fs[end-1] = f
			end--
		case e == 0 || linkGone(e):
			// Down, gone, or the watcher closed s already.
			c.DropOut(ports.DropLinkDown, uint64(end-sent))
			c.requestCheck()
			return sent, nil
		default:
			c.DropOut(ports.DropTxError, uint64(end-sent))
			return sent, fmt.Errorf("%s: write: %w", c.name, err)
		}
	}
	return sent, nil
}

// TryWriteFrames sends the longest prefix of fs the interface takes now,
// without waiting, dropping or counting, for the engine's direct writes
// (ports.TryWriter). A runt, an oversize frame, a full socket, an error or
// a link that is down end it; WriteFrames deals with the rest.
func (c *Conn) TryWriteFrames(fs []*frame.Frame) (n int, cut bool) {
	if c.closed.Load() || !c.LinkUp.Load() {
		return 0, false
	}
	s := c.cur.Load()
	if s == nil {
		return 0, false
	}
	maxOut := int(c.maxOut.Load())
	end := 0
	for end < len(fs) {
		if l := fs[end].Len(); l < 14 || l > maxOut {
			break
		}
		end++
	}
	return s.w.TrySend(fs[:end]), false
}

// Flush returns nil: a frame is never cut.
func (c *Conn) Flush() error { return nil }

// Close detaches from the interface, which unblocks ReadFrames and
// WriteFrames, and leaves the interface as it was. It is safe to call more
// than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.wg.Wait() // the watcher is gone: nobody swaps sockets now
		if s := c.cur.Swap(nil); s != nil {
			s.close()
		}
		unix.Close(c.ctl)
		c.ns.Close()
		c.log.Info("port closed", "port", c.name)
	})
	return nil
}

// logEvery limits how often a repeating error is logged.
const logEvery = 10 * time.Second

// linkGone reports whether an errno means the interface is down or gone,
// which the port waits out rather than reports.
func linkGone(e syscall.Errno) bool {
	switch e {
	case unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
		return true
	}
	return false
}

// transientRead reports whether a receive error is a passing shortage.
func transientRead(e syscall.Errno) bool {
	switch e {
	case unix.ENOBUFS, unix.ENOMEM, unix.EINTR, unix.EAGAIN:
		return true
	}
	return false
}

// errNoInterface is returned for an interface that does not exist.
var errNoInterface = errors.New("no such interface")
