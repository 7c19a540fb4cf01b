package wpan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// A link is one byte stream to the peer: a connection, a FIFO pair, a pty
// master. *os.File and net.Conn are links.
type link interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	Close() error
}

// A mode says what a port does when its link fails.
type mode uint8

const (
	modeAccepted   mode = iota // the port ends with its connection
	modeDialled                // the port dials again and waits
	modePersistent             // one link for life (FIFO pair, pty); reads wait out a missing peer
)

// A Port is an 802.15.4 UART pipe port: a FIFO pair (OpenPipe), a unix
// stream connection (Listen, Dial) or a pty (OpenPTY). ReadFrames and
// WriteFrames may run at the same time on two goroutines; Close may be
// called from any.
type Port struct {
	ports.Stats

	name    string
	log     *slog.Logger
	batch   int
	timeout time.Duration
	mode    mode

	// cur is the link. Accepted and persistent ports have one for life; a
	// dialled one has none while it is down, and up is signalled when it
	// gets one.
	cur      atomic.Pointer[session]
	up       chan struct{}
	stopDial context.CancelFunc // modeDialled only: stops dialling

	done      chan struct{} // closed by Close
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
	onClose   func() // after the link is closed: removes a pty's symlink
	errClosed error  // built once, so a closed port answers without allocating
	errGone   error  // the connection ended before this write

	// Owned by the reading goroutine.
	rs     *session // the link rbuf holds bytes of
	rbuf   []byte
	r, w   int
	dec    Decoder
	peerUp bool // modePersistent: the last read found a peer

	// Owned by the writing goroutine.
	wbuf    []byte // one write: at most pipeBuf bytes
	rest    []byte // the unsent tail of a frame a timeout cut in two
	restBuf [MaxEncodedLen]byte
	owner   *session // the link rest belongs to
	stall   bool     // the peer took no data at the last write

	slave string // OpenPTY: the pty slave
}

var _ ports.Port = (*Port)(nil)

// A session is one link.
type session = sockets.Session[link]

func newPort(name string, m mode, opt Options) *Port {
	return &Port{
		name:      name,
		log:       opt.Logger,
		batch:     opt.BatchSize,
		timeout:   opt.WriteTimeout,
		mode:      m,
		done:      make(chan struct{}),
		errClosed: fmt.Errorf("%s: %w", name, net.ErrClosed),
		errGone:   fmt.Errorf("%s: connection lost: %w", name, net.ErrClosed),
		rbuf:      make([]byte, rxBufSize),
		wbuf:      make([]byte, 0, pipeBuf),
	}
}

// withLink gives p its link for life (accepted and persistent ports).
func (p *Port) withLink(l link) *Port {
	p.cur.Store(sockets.NewSession(l))
	p.LinkUp.Store(true)
	return p
}

// kill closes s for reason err, unless something else did first, and
// reports whether it was the first.
func (p *Port) kill(s *session, err error) bool {
	return s.End(err, func() {
		if p.mode == modeDialled {
			p.cur.CompareAndSwap(s, nil)
		}
		p.LinkUp.Store(false)
	})
}

// ReadFrames waits for at least one frame and fills up to len(fs) (at most
// BatchSize) frames.
//
// An accepted port returns an error when its connection ends (the peer
// hung up: wrapping io.EOF). A dialled port waits for the next connection,
// a FIFO pair or pty for the next peer. After Close the error wraps
// net.ErrClosed.
func (p *Port) ReadFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	fs = fs[:min(len(fs), p.batch)]
	for {
		if p.closed.Load() {
			return 0, p.errClosed
		}
		s := p.cur.Load()
		if s == nil {
			select {
			case <-p.up:
			case <-p.done:
			}
			continue
		}
		if s != p.rs {
			p.rs = s
			p.dec.Reset()
			p.r, p.w = 0, 0
		}
		n, err := p.readFrom(s, fs)
		if n > 0 || p.mode != modeDialled {
			return n, err
		}
		// Dialled: this connection is over; wait for the next.
	}
}

// readFrom fills fs from s, reading when no whole frame is buffered. When
// s fails it closes it and returns why.
func (p *Port) readFrom(s *session, fs []*frame.Frame) (int, error) {
	for {
		n, used, bad, oversize := p.dec.Decode(p.rbuf[p.r:p.w], fs)
		p.r += used
		if bad > 0 {
			p.DropIn(ports.DropBadFraming, uint64(bad))
		}
		if oversize > 0 {
			p.DropIn(ports.DropOversize, uint64(oversize))
		}
		if n > 0 {
			return n, nil
		}
		// Decode used every byte: fs is not full.
		p.r, p.w = 0, 0
		k, err := s.Conn.Read(p.rbuf)
		p.w = k
		if k > 0 {
			if p.mode == modePersistent && !p.peerUp {
				p.peerUp = true
				p.LinkUp.Store(true)
			}
			continue
		}
		if err == nil {
			continue
		}
		if p.closed.Load() {
			return 0, p.errClosed
		}
		if p.mode == modePersistent {
			// A pty whose slave nobody holds reads EIO at once, and keeps
			// doing so until a peer opens it: wait, do not spin.
			p.peerGone(err)
			if !p.sleep(ptyPoll) {
				return 0, p.errClosed
			}
			continue
		}
		eof := errors.Is(err, io.EOF)
		if eof {
			err = fmt.Errorf("%s: peer hung up: %w", p.name, err)
		} else {
			err = fmt.Errorf("%s: read: %w", p.name, err)
		}
		if p.kill(s, err) {
			if p.dec.Partial() {
				p.DropIn(ports.DropBadFraming, 1) // cut short
			}
			if !eof {
				p.Errors.Add(1)
			}
		}
		return 0, s.Err()
	}
}

// peerGone notes that a persistent port's peer went away.
func (p *Port) peerGone(err error) {
	if p.dec.Partial() {
		p.DropIn(ports.DropBadFraming, 1)
	}
	p.dec.Reset()
	if p.peerUp || p.LinkUp.Load() {
		p.peerUp = false
		p.LinkUp.Store(false)
		p.Disconnects.Add(1)
		p.log.Info("peer gone; waiting for the next one", "port", p.name, "err", err)
	}
	if !errors.Is(err, syscall.EIO) {
		p.Errors.Add(1)
	}
}

// WriteFrames writes fs in order, whole frames of up to 4096 bytes per
// write, and moves the frames it wrote to the front of fs: they are fs[:n].
// Empty frames and frames longer than MaxPSDU are dropped and counted
// (runt, oversize).
//
// A peer that takes no data for WriteTimeout keeps its link: the frames
// not written are dropped as queue_full. While a dialled port is down, or
// a pty has no peer, frames are dropped as link_down without an error.
// When a write fails, the frames not written are counted as tx_error and
// the connection is closed: a dialled port dials again and returns no
// error; an accepted one returns the error.
func (p *Port) WriteFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if p.closed.Load() {
		p.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, p.errClosed
	}
	end := sendable(&p.Stats, fs)
	if end == 0 {
		return 0, nil
	}
	s := p.cur.Load()
	if s == nil || s.IsDead() {
		p.DropOut(ports.DropLinkDown, uint64(end))
		if p.mode == modeDialled {
			return 0, nil
		}
		return 0, p.errGone
	}
	if err := p.flushRest(s); err != nil {
		return 0, p.writeError(s, err, uint64(end))
	}
	sent := 0
	for sent < end {
		buf, k := p.wbuf[:0], sent
		for k < end && len(buf)+2+fs[k].Len() <= pipeBuf {
			buf = AppendFrame(buf, fs[k].Bytes())
			k++
		}
		s.Conn.SetWriteDeadline(time.Now().Add(p.timeout))
		m, err := s.Conn.Write(buf)
		if err == nil {
			sent = k
			continue
		}
		// Whole frames written count as sent; a frame cut in two is
		// finished before anything else goes out, so it counts too.
		for sent < k {
			l := 2 + fs[sent].Len()
			if m <= 0 {
				break
			}
			if m < l {
				p.rest = append(p.restBuf[:0], buf[m:l]...)
				p.owner = s
			}
			buf, m = buf[l:], m-l
			sent++
		}
		return sent, p.writeError(s, err, uint64(end-sent))
	}
	if p.stall {
		p.stall = false
		p.log.Info("peer reads again", "port", p.name)
	}
	return sent, nil
}

// flushRest finishes a frame cut short on the same link. Another link
// starts clean.
func (p *Port) flushRest(s *session) error {
	if p.owner != s {
		p.owner, p.rest = s, nil
	}
	for len(p.rest) > 0 {
		s.Conn.SetWriteDeadline(time.Now().Add(p.timeout))
		k, err := s.Conn.Write(p.rest)
		p.rest = p.rest[k:]
		if err != nil {
			return err
		}
	}
	return nil
}

// writeError counts the n frames a failed write leaves unsent and returns
// the error WriteFrames reports.
func (p *Port) writeError(s *session, err error, n uint64) error {
	switch {
	case p.closed.Load():
		p.DropOut(ports.DropLinkDown, n)
		return p.errClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		p.DropOut(ports.DropQueueFull, n)
		if !p.stall {
			p.stall = true
			p.log.Warn("peer takes no data; dropping frames until it reads again", "port", p.name, "timeout", p.timeout)
		}
		return nil
	case p.mode == modePersistent:
		// A pty with no peer (EIO): the link stays for the next one.
		p.DropOut(ports.DropLinkDown, n)
		p.rest = nil
		return nil
	}
	p.DropOut(ports.DropTxError, n)
	err = fmt.Errorf("%s: write: %w", p.name, err)
	if !p.kill(s, err) {
		if p.mode == modeDialled {
			return nil
		}
		return p.errGone
	}
	p.log.Info("write failed; closing the connection", "port", p.name, "err", err)
	if p.mode == modeDialled {
		p.Errors.Add(1)
		return nil
	}
	return err
}

// sendable moves the frames fit to send to the front of fs, keeping their
// order, and counts the others: empty ones (runt; LEN 0 is bad framing)
// and those longer than MaxPSDU (oversize). It returns how many can be sent.
func sendable(s *ports.Stats, fs []*frame.Frame) int {
	end := 0
	var runts, oversize uint64
	for i, f := range fs {
		switch l := f.Len(); {
		case l == 0:
			runts++
		case l > MaxPSDU:
			oversize++
		default:
			fs[end], fs[i] = fs[i], fs[end]
			end++
		}
	}
	if runts > 0 {
		s.DropOut(ports.DropRunt, runts)
	}
	if oversize > 0 {
		s.DropOut(ports.DropOversize, oversize)
	}
	return end
}

// BatchSize is the most frames one ReadFrames call fills.
func (p *Port) BatchSize() int { return p.batch }

// String describes the port for logs, e.g. "wpan pipe:/tmp/hub/ip-stack-node1".
func (p *Port) String() string { return p.name }

// Close closes the link, which unblocks ReadFrames and WriteFrames, and
// stops a dialled port from dialling. FIFOs stay (a running QEMU holds
// them); a pty's symlink is removed. It is safe to call more than once.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.done)
		if p.stopDial != nil {
			p.stopDial()
		}
		if s := p.cur.Load(); s != nil {
			p.kill(s, p.errClosed)
		}
		p.wg.Wait()
		if p.onClose != nil {
			p.onClose()
		}
		p.LinkUp.Store(false)
		p.log.Info("port closed", "port", p.name)
	})
	return nil
}

// sleep waits d, or until Close; it reports whether d passed.
func (p *Port) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}
