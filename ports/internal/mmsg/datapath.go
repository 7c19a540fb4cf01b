package mmsg

import (
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// A Datapath is the frame side of a port that carries one Ethernet frame per
// datagram (QEMU's dgram, socket udp= and mcast= backends): it implements
// ReadFrames, WriteFrames and BatchSize of ports.Port over a Reader and a
// Writer, and counts what only the port can see. The port kinds own the
// sockets and wrap a Datapath.
//
// One goroutine may call ReadFrames while another calls WriteFrames.
type Datapath struct {
	name    string // for errors and logs, e.g. "dgram udp:127.0.0.1:5555->127.0.0.1:5556"
	log     *slog.Logger
	stats   *ports.Stats
	r       *Reader
	w       *Writer
	maxIn   int // longest datagram received; longer ones are oversize
	maxOut  int // longest frame sent
	echo    []byte
	echoAny bool
	connect func() error

	echoes    atomic.Uint64
	closed    atomic.Bool
	errClosed error // built once, so a closed port answers without allocating

	// Owned by the reading goroutine.
	readErrLog time.Time
	// Owned by the writing goroutine.
	link linkState
}

type linkState uint8

const (
	linkUnknown linkState = iota
	linkUp
	linkDown
)

// Config describes a Datapath.
type Config struct {
	// Name identifies the port in errors and logs.
	Name string
	// Log receives lifecycle and error messages, never one per frame.
	Log *slog.Logger
	// Stats are the port's counters.
	Stats *ports.Stats
	// Read is the socket frames arrive on; Write the one they leave by,
	// towards To (a raw sockaddr), or the socket's peer if To is nil.
	Read, Write syscall.RawConn
	To          []byte
	// BatchSize is the most datagrams per system call.
	BatchSize int
	// MaxIn is the longest datagram accepted: longer ones, and those
	// longer than the frame slot, are dropped as oversize. MaxOut is the
	// longest frame sent.
	MaxIn, MaxOut int
	// Echo, if set, is the raw address the port's own datagrams come from
	// when the network loops them back (multicast): those are discarded and
	// counted by Echoes. With EchoAnyAddr only family and port are compared.
	Echo        []byte
	EchoAnyAddr bool
	// Connect, if set, (re)connects the Write socket to its peer. It is
	// called before sending while the peer is not known to be there, and
	// once when a send finds it gone; an error for which the peer is absent
	// drops the frames as DropLinkDown. It must not allocate.
	Connect func() error
}

// NewDatapath returns a Datapath for c.
func NewDatapath(c Config) *Datapath {
	d := &Datapath{
		name:      c.Name,
		log:       c.Log,
		stats:     c.Stats,
		r:         NewReader(c.Read, c.BatchSize, len(c.Echo) > 0),
		w:         NewWriter(c.Write, c.BatchSize, c.To),
		maxIn:     c.MaxIn,
		maxOut:    c.MaxOut,
		echoAny:   c.EchoAnyAddr,
		connect:   c.Connect,
		errClosed: fmt.Errorf("%s: %w", c.Name, net.ErrClosed),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if len(c.Echo) > 0 {
		d.echo = append([]byte(nil), c.Echo...)
	}
	return d
}

// BatchSize is the most frames one ReadFrames call fills.
func (d *Datapath) BatchSize() int { return d.r.BatchSize() }

// Echoes is how many of the port's own datagrams came back and were
// discarded. They are not frames, so they are not drops either.
func (d *Datapath) Echoes() uint64 { return d.echoes.Load() }

// Close makes later and pending calls fail with an error wrapping
// net.ErrClosed. The owner closes the sockets after calling it; that is what
// wakes a blocked ReadFrames or WriteFrames.
func (d *Datapath) Close() { d.closed.Store(true) }

// ReadFrames waits for at least one datagram and receives a batch of up to
// len(fs) into the frames' slots, one frame per datagram. Empty datagrams
// (DropRunt) and those longer than the slot or MaxIn (DropOversize) are
// counted and skipped, as are echoes; if a whole batch is skipped it waits
// again. It may reorder fs: the frames it filled are fs[:n].
func (d *Datapath) ReadFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if d.closed.Load() {
		return 0, d.errClosed
	}
	k := min(len(fs), d.r.BatchSize())
	for {
		for i, f := range fs[:k] {
			b := f.Space()
			d.r.SetBuf(i, b[:min(len(b), d.maxIn)])
		}
		n, err := d.r.Read(k)
		if err != nil {
			if d.closed.Load() {
				return 0, d.errClosed
			}
			if e, ok := err.(syscall.Errno); ok && transientRead(e) {
				d.stats.Errors.Add(1)
				if now := time.Now(); now.Sub(d.readErrLog) > logEvery {
					d.readErrLog = now
					d.log.Warn("receive failed", "port", d.name, "err", err)
				}
				continue
			}
			return 0, fmt.Errorf("%s: read: %w", d.name, err)
		}
		filled := 0
		var runts, oversize, echoes uint64
		for i := range n {
			switch {
			case d.echo != nil && SameInet(d.r.Name(i), d.echo, d.echoAny):
				echoes++
			case d.r.Truncated(i):
				oversize++
			case d.r.Len(i) == 0:
				runts++ // QEMU would take it for a hang-up; it carries no frame
			default:
				fs[i].SetLen(d.r.Len(i))
				fs[filled], fs[i] = fs[i], fs[filled]
				filled++
			}
		}
		if runts > 0 {
			d.stats.DropIn(ports.DropRunt, runts)
		}
		if oversize > 0 {
			d.stats.DropIn(ports.DropOversize, oversize)
		}
		if echoes > 0 {
			d.echoes.Add(echoes)
		}
		if filled > 0 {
			return filled, nil
		}
	}
}

// logEvery limits how often a repeating error is logged.
const logEvery = 10 * time.Second

// transientRead reports whether a receive error concerns an earlier
// datagram or a passing shortage, not the socket: the port reads on.
func transientRead(e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.ENETDOWN,
		unix.EHOSTDOWN, unix.ENOBUFS, unix.ENOMEM, unix.ETIMEDOUT, unix.EPROTO:
		return true
	}
	return false
}

// peerAbsent reports whether a send error means nobody is there to take
// the datagram: the link is down, and frames are dropped as DropLinkDown
// rather than reported as errors.
func peerAbsent(e syscall.Errno) bool {
	switch e {
	case unix.ENOENT, // unix: the peer's socket file does not exist (yet)
		unix.ECONNREFUSED, // unix: a stale file, nobody bound; udp: ICMP port unreachable
		unix.ENOTCONN, unix.EDESTADDRREQ,
		unix.ENETUNREACH, unix.EHOSTUNREACH, unix.ENETDOWN, unix.EHOSTDOWN:
		return true
	}
	return false
}

// WriteFrames sends fs in order, one datagram per frame, with one sendmmsg
// per BatchSize frames. Empty frames (DropRunt) and frames longer than
// MaxOut (DropOversize) are counted and skipped: QEMU takes an empty
// datagram for a hang-up. When the peer is absent the rest is dropped as
// DropLinkDown without an error. It moves the frames it sent to the front
// of fs, in order, so fs[:n] are exactly the frames written.
func (d *Datapath) WriteFrames(fs []*frame.Frame) (int, error) {
	if d.closed.Load() {
		return 0, d.errClosed
	}
	// Partition: frames to send first, keeping their order.
	end := 0
	var runts, oversize uint64
	for i, f := range fs {
		switch l := f.Len(); {
		case l == 0:
			runts++
		case l > d.maxOut:
			oversize++
		default:
			fs[end], fs[i] = fs[i], fs[end]
			end++
		}
	}
	if runts > 0 {
		d.stats.DropOut(ports.DropRunt, runts)
	}
	if oversize > 0 {
		d.stats.DropOut(ports.DropOversize, oversize)
	}

	if d.connect != nil && d.link != linkUp && end > 0 {
		if ok, err := d.reconnect(end); !ok {
			return 0, err
		}
	}
	sent, retried := 0, false
	for sent < end {
		k := min(end-sent, d.w.BatchSize())
		for j, f := range fs[sent : sent+k] {
			d.w.SetBuf(j, f.Bytes())
		}
		m, err := d.w.Write(k)
		sent += m
		if m > 0 && d.link != linkUp {
			d.linkChanged(linkUp, nil)
		}
		if err == nil {
			continue
		}
		e, _ := err.(syscall.Errno)
		switch {
		case d.closed.Load():
			return sent, d.errClosed
		case e == unix.EMSGSIZE:
			// Longer than this socket can carry after all: drop just this
			// one, behind the frames still to send.
			d.stats.DropOut(ports.DropOversize, 1)
			f := fs[sent]
			copy(fs[sent:end-1], fs[sent+1:end])
			fs[end-1] = f
			end--
		case e != 0 && peerAbsent(e):
			if d.connect != nil && !retried {
				// The peer may have restarted: a connected socket still
				// points at the old one.
				retried = true
				if ok, err := d.reconnect(end - sent); !ok {
					return sent, err
				}
				continue
			}
			d.stats.DropOut(ports.DropLinkDown, uint64(end-sent))
			if d.link != linkDown {
				d.linkChanged(linkDown, err)
			}
			return sent, nil
		default:
			d.stats.DropOut(ports.DropTxError, uint64(end-sent))
			return sent, fmt.Errorf("%s: write: %w", d.name, err)
		}
	}
	return sent, nil
}

// TryWriteFrames is ports.TryWriter's: it sends the longest prefix of fs
// the socket takes now, one sendmmsg per BatchSize frames, and leaves to
// WriteFrames whatever needs waiting, counting or a decision: a runt or an
// oversize frame, a full socket, any error, and every frame until a send
// has shown the peer there. A datagram is never cut.
func (d *Datapath) TryWriteFrames(fs []*frame.Frame) (n int, cut bool) {
	if d.closed.Load() || d.link != linkUp {
		return 0, false
	}
	end := 0
	for end < len(fs) {
		if l := fs[end].Len(); l == 0 || l > d.maxOut {
			break
		}
		end++
	}
	return d.w.TrySend(fs[:end]), false
}

// Flush is ports.TryWriter's: a datagram is never cut, so there is nothing
// to finish.
func (d *Datapath) Flush() error { return nil }

// reconnect calls Connect. If that fails it drops n frames and reports
// false, with an error unless the peer is simply absent.
func (d *Datapath) reconnect(n int) (bool, error) {
	err := d.connect()
	if err == nil {
		return true, nil
	}
	if d.closed.Load() {
		return false, d.errClosed
	}
	if e, ok := err.(syscall.Errno); ok && peerAbsent(e) {
		d.stats.DropOut(ports.DropLinkDown, uint64(n))
		if d.link != linkDown {
			d.linkChanged(linkDown, err)
		}
		return false, nil
	}
	d.stats.DropOut(ports.DropTxError, uint64(n))
	return false, fmt.Errorf("%s: connect: %w", d.name, err)
}

// linkChanged records and logs a change of the peer's reachability, which
// only sends reveal. It is called on changes only, so it does not repeat
// while the peer stays away.
func (d *Datapath) linkChanged(s linkState, err error) {
	was := d.link
	d.link = s
	d.stats.LinkUp.Store(s == linkUp)
	switch {
	case s == linkDown:
		d.log.Info("peer unreachable; dropping frames until it is back", "port", d.name, "err", err)
	case was == linkDown:
		d.log.Info("peer reachable again", "port", d.name)
	default:
		d.log.Debug("peer reachable", "port", d.name)
	}
}
