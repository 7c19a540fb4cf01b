package slip

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

// A Port is a SLIP port: one accepted connection (Listener.Accept), or a
// link that Dial, OpenPTY or OpenTTY keeps up. ReadFrames and WriteFrames
// may run at the same time on two goroutines; Close may be called from any.
type Port struct {
	ports.Stats

	name     string
	log      *slog.Logger
	maxFrame int
	batch    int
	timeout  time.Duration
	stall    bool // the peer took no data at the last write; owned by WriteFrames

	// cur is the link. An accepted Port has one for life; the others have
	// none while the peer is away, and up is signalled when they get one.
	cur         atomic.Pointer[session]
	up          chan struct{}
	relinked    bool               // kept linked (Dial, OpenPTY, OpenTTY), not accepted
	stopConnect context.CancelFunc // relinked only: stops connecting
	release     func()             // run by Close after the sessions end: closes a pty, say

	done      chan struct{} // closed by Close
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
	errClosed error // built once, so a closed port answers without allocating
	errGone   error // the connection ended before this write: wraps net.ErrClosed

	// Owned by the reading goroutine.
	rs   *session // the session buf holds bytes of
	buf  []byte
	r, w int // buf[r:w] was read and not decoded yet
	dec  *Decoder
	// Owned by the writing goroutine.
	wr *writer

	ip *ipLink // ModeIP only
}

var _ ports.Port = (*Port)(nil)

// An endpoint is what a session reads and writes: a net.Conn or an
// *os.File in the runtime poller.
type endpoint interface {
	io.ReadWriteCloser
	SetWriteDeadline(time.Time) error
	SetReadDeadline(time.Time) error // ModeIP: wakes a blocked read
}

// A session is one stretch of a link with a peer. It dies once: whoever
// first sees it fail (reader, writer, redialler or Close) records why and
// closes it.
type session = sockets.Session[endpoint]

func newPort(name string, opt Options) *Port {
	decMax := opt.MaxFrame
	if opt.Mode == ModeIP {
		decMax = max(opt.MaxFrame-ethHeaderLen, 1)
	}
	p := &Port{
		name:      name,
		log:       opt.Logger,
		maxFrame:  opt.MaxFrame,
		batch:     opt.BatchSize,
		timeout:   opt.WriteTimeout,
		done:      make(chan struct{}),
		errClosed: fmt.Errorf("%s: %w", name, net.ErrClosed),
		errGone:   fmt.Errorf("%s: connection lost: %w", name, net.ErrClosed),
		buf:       make([]byte, rxBufSize),
		dec:       NewDecoder(decMax),
		wr:        newWriter(opt.MaxFrame, opt.BatchSize),
	}
	if opt.Mode == ModeIP {
		p.ip = newIPLink(name, &p.Stats, opt)
		p.wr.strip = true
	}
	return p
}

// accepted wraps a connection accepted by a Listener.
func accepted(name string, conn net.Conn, opt Options) *Port {
	p := newPort(name, opt)
	p.cur.Store(sockets.NewSession[endpoint](conn))
	p.LinkUp.Store(true)
	return p
}

// kill ends s for reason err, unless something else did first, and
// reports whether it was the first.
func (p *Port) kill(s *session, err error) (first bool) {
	return s.End(err, func() {
		if p.relinked {
			p.cur.CompareAndSwap(s, nil)
		}
		p.LinkUp.Store(false)
	})
}

// ReadFrames waits for at least one frame and fills up to len(fs) (at most
// BatchSize) frames. One read takes whatever the link holds, up to 64 KiB,
// so one call usually fills all of fs and the next ones need no system
// call.
//
// An accepted Port returns an error when its connection ends: the peer
// hung up (wrapping io.EOF), or the port gave up writing to it. The others
// wait for the peer to come back instead. After Close the error wraps
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
			p.r, p.w = 0, 0
			p.dec.Reset()
		}
		var n int
		var err error
		if p.ip != nil {
			n, err = p.readIP(s, fs)
		} else {
			n, err = p.readFrom(s, fs)
		}
		if n > 0 || !p.relinked {
			return n, err
		}
		// This session is over; wait for the next.
	}
}

// readFrom fills fs from s, reading when the buffer holds no whole frame.
// When s fails it ends it and returns why.
func (p *Port) readFrom(s *session, fs []*frame.Frame) (int, error) {
	for {
		n, used, bad, oversize := p.dec.Decode(p.buf[p.r:p.w], fs)
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
		// Decode used everything: fs was not full.
		if p.ip != nil && p.ip.hasOut() {
			return 0, nil // readIP hands them over first
		}
		k, err := s.Conn.Read(p.buf)
		p.r, p.w = 0, max(k, 0)
		if k > 0 || err == nil {
			continue
		}
		if p.closed.Load() {
			return 0, p.errClosed
		}
		if p.ip != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			// WriteFrames queued frames and woke us (kickReader).
			s.Conn.SetReadDeadline(time.Time{})
			return 0, nil
		}
		eof := errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO) // EIO: a pty's other side closed
		if eof {
			err = fmt.Errorf("%s: peer hung up: %w", p.name, err)
		} else {
			err = fmt.Errorf("%s: read: %w", p.name, err)
		}
		if p.dec.Partial() {
			p.DropIn(ports.DropBadFraming, 1) // cut short
			p.dec.Reset()
		}
		if p.kill(s, err) && !eof {
			p.Errors.Add(1)
		}
		return 0, s.Err()
	}
}

// WriteFrames encodes fs, in order, into one buffer and writes it with one
// system call (more when the batch exceeds 256 KiB). It moves the frames
// it wrote to the front of fs: they are fs[:n]. Empty frames and frames
// longer than MaxFrame are dropped and counted (runt, oversize).
//
// While the peer is away (Dial, OpenPTY, OpenTTY) it drops the frames as
// link_down and returns at once, without an error. A peer that takes no
// data for WriteTimeout keeps its link: the frames not written are dropped
// as queue_full, and a frame cut in two is finished before anything else
// is sent. When a write fails, the frames not written are counted as
// tx_error and the session is ended: Dial and OpenTTY connect again and
// return no error; an accepted Port returns the error, and after that an
// error wrapping net.ErrClosed.
func (p *Port) WriteFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if p.closed.Load() {
		p.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, p.errClosed
	}
	var end int
	if p.ip != nil {
		end = p.ip.egress(fs)
		p.kickReader()
	} else {
		end = sendable(&p.Stats, fs, p.maxFrame)
	}
	if end == 0 {
		return 0, nil
	}
	s := p.cur.Load()
	if s == nil || s.IsDead() {
		p.DropOut(ports.DropLinkDown, uint64(end))
		if p.relinked {
			return 0, nil
		}
		return 0, p.errGone
	}
	s.Conn.SetWriteDeadline(time.Now().Add(p.timeout))
	if err := p.wr.flushRest(s); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.stalled(uint64(end))
			return 0, nil
		}
		p.DropOut(ports.DropTxError, uint64(end))
		return 0, p.writeFailed(s, err)
	}
	sent := 0
	for sent < end {
		k := p.wr.fill(fs[sent:end])
		s.Conn.SetWriteDeadline(time.Now().Add(p.timeout))
		nb, err := s.Conn.Write(p.wr.buf)
		if err == nil {
			sent += k
			continue
		}
		sent += p.wr.written(nb)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.stalled(uint64(end - sent))
			return sent, nil
		}
		p.wr.rest = nil // the session ends: nobody will finish it
		p.DropOut(ports.DropTxError, uint64(end-sent))
		return sent, p.writeFailed(s, err)
	}
	if p.stall {
		p.stall = false
		p.log.Info("peer reads again", "port", p.name)
	}
	return sent, nil
}

// stalled drops n frames the peer did not take in time, and says so once
// per stall.
func (p *Port) stalled(n uint64) {
	if n > 0 {
		p.DropOut(ports.DropQueueFull, n)
	}
	if !p.stall {
		p.stall = true
		p.log.Warn("peer takes no data; dropping frames until it reads again", "port", p.name, "timeout", p.timeout)
	}
}

// writeFailed ends s after a failed write and returns the error
// WriteFrames reports.
func (p *Port) writeFailed(s *session, err error) error {
	if p.closed.Load() {
		return p.errClosed
	}
	err = fmt.Errorf("%s: write: %w", p.name, err)
	if !p.kill(s, err) {
		// The reader saw the end first: the failure is old news.
		if p.relinked {
			return nil
		}
		return p.errGone
	}
	p.log.Info("write failed; ending the session", "port", p.name, "err", err)
	if p.relinked {
		p.Errors.Add(1) // reported to nobody else: the engine sees no error
		return nil
	}
	return err // the engine counts it
}

// BatchSize is the most frames one ReadFrames call fills.
func (p *Port) BatchSize() int { return p.batch }

// String describes the port for logs, e.g. "slip unix:/tmp/slip.sock#1".
func (p *Port) String() string { return p.name }

// Close ends the link, which unblocks ReadFrames and WriteFrames, stops
// reconnecting, and removes what the port created (a pty's symlink). It is
// safe to call more than once.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		close(p.done)
		if p.stopConnect != nil {
			p.stopConnect()
		}
		if s := p.cur.Load(); s != nil {
			p.kill(s, p.errClosed)
		}
		p.wg.Wait()
		if p.release != nil {
			p.release()
		}
		p.LinkUp.Store(false)
		p.log.Info("port closed", "port", p.name)
	})
	return nil
}

// keepLinked starts the goroutine that keeps p linked through open,
// which returns the next session's endpoint: it dials, opens a device or
// waits for a peer (what says which, for logs: "dial", "open"), or fails
// (a failure counts in Errors and is retried after a backoff).
func (p *Port) keepLinked(what string, open func(context.Context) (endpoint, error), opt Options) {
	ctx, cancel := context.WithCancel(context.Background())
	p.relinked, p.stopConnect = true, cancel
	p.up = make(chan struct{}, 1)
	r := &sockets.Redialer[endpoint]{
		Dial: func(ctx context.Context) (endpoint, error) {
			ep, err := open(ctx)
			if err == nil {
				err = p.hello(ep)
			}
			return ep, err
		},
		Min: opt.BackoffMin,
		Max: opt.BackoffMax,
		Failed: func(err error, first bool, retryIn time.Duration) {
			p.connectFailed(what, err, first, retryIn)
		},
		Serve: p.serve,
	}
	p.wg.Go(func() { r.Run(ctx) })
}

// connectFailed counts and logs a failed attempt to link, unless Close
// caused it.
func (p *Port) connectFailed(what string, err error, first bool, retryIn time.Duration) {
	if p.closed.Load() {
		return
	}
	p.Errors.Add(1)
	if first {
		p.log.Info("peer not reachable; trying until it is", "port", p.name, "op", what, "err", err)
	} else {
		p.log.Debug("attempt failed", "port", p.name, "op", what, "err", err, "retry_in", retryIn)
	}
}

// serve publishes a new session on ep and waits for it to die. It reports
// whether to connect again: not after Close.
func (p *Port) serve(ep endpoint) bool {
	s := sockets.NewSession(ep)
	p.cur.Store(s)
	p.LinkUp.Store(true)
	p.Connects.Add(1)
	p.log.Info("peer connected", "port", p.name)
	select {
	case p.up <- struct{}{}:
	default:
	}
	select {
	case <-s.Dead():
	case <-p.done:
		p.kill(s, p.errClosed) // Close may have looked before s was stored
		return false
	}
	if p.closed.Load() {
		return false
	}
	p.Disconnects.Add(1)
	p.log.Info("peer gone; waiting for it", "port", p.name, "err", s.Err())
	return true
}

// hello sends a lone End, as tunslip6 does, so that the peer's decoder
// drops whatever half packet an earlier link left in it.
func (p *Port) hello(ep endpoint) error {
	ep.SetWriteDeadline(time.Now().Add(p.timeout))
	if _, err := ep.Write([]byte{End}); err != nil {
		ep.Close()
		return fmt.Errorf("%s: hello: %w", p.name, err)
	}
	return nil
}
