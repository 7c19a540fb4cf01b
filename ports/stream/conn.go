package stream

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
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// A Conn is a stream port: one accepted connection (Listener.Accept) or a
// connection that Dial keeps up. ReadFrames and WriteFrames may run at the
// same time on two goroutines; Close may be called from any.
type Conn struct {
	ports.Stats

	name     string
	log      *slog.Logger
	maxFrame int
	batch    int
	timeout  time.Duration
	stall    bool // the peer took no data at the last write; owned by WriteFrames

	// cur is the connection. An accepted Conn has one for life; a dialled
	// one has none while it is down, and up is signalled when it gets one.
	cur      atomic.Pointer[session]
	up       chan struct{}
	dialled  bool               // made by Dial, not accepted
	stopDial context.CancelFunc // Dial: stops dialling

	done      chan struct{} // closed by Close
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
	errClosed error // built once, so a closed port answers without allocating
	errGone   error // the connection ended before this write: wraps net.ErrClosed

	// Owned by the reading goroutine.
	rs *session // the connection rd holds bytes of
	rd reader
	// Owned by the writing goroutine.
	wr *writer
}

var _ ports.TryWriter = (*Conn)(nil)

// A session is one connection.
type session = sockets.Session[net.Conn]

func newConn(name string, opt Options) *Conn {
	return &Conn{
		name:      name,
		log:       opt.Logger,
		maxFrame:  opt.MaxFrame,
		batch:     opt.BatchSize,
		timeout:   opt.WriteTimeout,
		done:      make(chan struct{}),
		errClosed: fmt.Errorf("%s: %w", name, net.ErrClosed),
		errGone:   fmt.Errorf("%s: connection lost: %w", name, net.ErrClosed),
		rd:        newReader(opt.MaxFrame),
		wr:        newWriter(),
	}
}

// accepted wraps a connection accepted by a Listener.
func accepted(name string, conn net.Conn, opt Options) *Conn {
	c := newConn(name, opt)
	c.cur.Store(sockets.NewSession(conn))
	c.LinkUp.Store(true)
	return c
}

// kill closes s for reason err, unless something else did first, and
// reports whether it was the first.
func (c *Conn) kill(s *session, err error) bool {
	return s.End(err, func() {
		if c.dialled {
			c.cur.CompareAndSwap(s, nil)
		}
		c.LinkUp.Store(false)
	})
}

// ReadFrames waits for at least one frame and fills up to len(fs) (at most
// BatchSize) frames. One read takes whatever the socket holds, up to 256
// KiB, so one call usually fills all of fs and the next ones need no
// system call.
//
// An accepted Conn returns an error when its connection ends: the peer
// hung up (wrapping io.EOF) or sent bad framing, or the port gave up
// writing to it. A dialled Conn waits for the next connection instead.
// After Close the error wraps net.ErrClosed.
func (c *Conn) ReadFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	fs = fs[:min(len(fs), c.batch)]
	for {
		if c.closed.Load() {
			return 0, c.errClosed
		}
		s := c.cur.Load()
		if s == nil {
			select {
			case <-c.up:
			case <-c.done:
			}
			continue
		}
		if s != c.rs {
			c.rs = s
			c.rd.reset()
		}
		n, err := c.readFrom(s, fs)
		if n > 0 || !c.dialled {
			return n, err
		}
		// Dialled: this connection is over; wait for the next.
	}
}

// readFrom fills fs from s, reading when the buffer has no whole frame.
// When s fails it closes it and returns why.
func (c *Conn) readFrom(s *session, fs []*frame.Frame) (int, error) {
	for {
		n, skipped, err := c.rd.decode(fs)
		if skipped > 0 {
			c.DropIn(ports.DropOversize, uint64(skipped))
		}
		if n > 0 {
			return n, nil
		}
		if err != nil {
			if c.kill(s, fmt.Errorf("%s: %w", c.name, err)) {
				c.DropIn(ports.DropBadFraming, 1)
				c.log.Warn("bad framing; closing the connection", "port", c.name, "len", uint32(err.(lengthError)))
			}
			return 0, s.Err()
		}
		k, err := s.Conn.Read(c.rd.space())
		c.rd.w += k
		if k > 0 || err == nil {
			continue
		}
		if c.closed.Load() {
			return 0, c.errClosed
		}
		eof := errors.Is(err, io.EOF)
		if eof {
			err = fmt.Errorf("%s: peer hung up: %w", c.name, err)
		} else {
			err = fmt.Errorf("%s: read: %w", c.name, err)
		}
		if c.kill(s, err) {
			if c.rd.partial() {
				c.DropIn(ports.DropBadFraming, 1) // cut short
			}
			if !eof {
				c.Errors.Add(1)
			}
		}
		return 0, s.Err()
	}
}

// WriteFrames writes fs in order with one writev per 512 frames, and moves
// the frames it wrote to the front of fs: they are fs[:n]. Empty frames
// and frames longer than MaxFrame are dropped and counted (runt,
// oversize).
//
// While a dialled Conn is disconnected it drops the frames as link_down and
// returns at once, without an error. A peer that takes no data for
// WriteTimeout (a guest stopped in a debugger, a QEMU whose NIC ring is
// full) keeps its connection: the frames not written are dropped as
// queue_full, and a frame cut in two is finished before anything else is
// sent. When a write fails, the frames not written are counted as tx_error
// and the connection is closed: a dialled Conn dials again and returns no
// error; an accepted one returns the error, and after that an error
// wrapping net.ErrClosed.
func (c *Conn) WriteFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if c.closed.Load() {
		c.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, c.errClosed
	}
	end := sendable(&c.Stats, fs, c.maxFrame)
	if end == 0 {
		return 0, nil
	}
	s := c.cur.Load()
	if s == nil || s.IsDead() {
		c.DropOut(ports.DropLinkDown, uint64(end))
		if c.dialled {
			return 0, nil
		}
		return 0, c.errGone
	}
	s.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.wr.flushRest(s); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.stalled(uint64(end))
			return 0, nil
		}
		c.DropOut(ports.DropTxError, uint64(end))
		return 0, c.writeFailed(s, err)
	}
	sent := 0
	for sent < end {
		k := min(end-sent, writeBatch)
		s.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
		m, err := c.wr.write(s.Conn, fs[sent:sent+k])
		sent += m
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.stalled(uint64(end - sent))
				return sent, nil
			}
			c.DropOut(ports.DropTxError, uint64(end-sent))
			return sent, c.writeFailed(s, err)
		}
	}
	if c.stall {
		c.stall = false
		c.log.Info("peer reads again", "port", c.name)
	}
	return sent, nil
}

// TryWriteFrames writes what the socket takes at once of fs's first
// frames, up to the first one WriteFrames would drop, with one writev
// that does not wait (ports.TryWriter). It writes nothing while the peer
// is stalled, the connection is down or a cut frame is still unsent.
func (c *Conn) TryWriteFrames(fs []*frame.Frame) (n int, cut bool) {
	if c.stall || c.closed.Load() {
		return 0, false
	}
	s := c.cur.Load()
	if s == nil || s.IsDead() {
		return 0, false
	}
	k := 0
	for _, f := range fs {
		if l := f.Len(); l == 0 || l > c.maxFrame {
			break
		}
		k++
	}
	if k == 0 {
		return 0, false
	}
	return c.wr.tryWrite(s, fs[:k])
}

// Flush finishes a frame TryWriteFrames cut, as WriteFrames would before
// its own frames: waiting up to WriteTimeout (then the peer counts as
// stalled and the rest waits for the next write), closing the connection
// when the write fails.
func (c *Conn) Flush() error {
	s := c.cur.Load()
	if c.closed.Load() || s == nil || s != c.wr.owner || len(c.wr.rest) == 0 || s.IsDead() {
		return nil
	}
	s.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if err := c.wr.flushRest(s); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.stalled(0)
			return nil
		}
		return c.writeFailed(s, err)
	}
	return nil
}

// stalled drops n frames the peer did not take in time, and says so once
// per stall.
func (c *Conn) stalled(n uint64) {
	c.DropOut(ports.DropQueueFull, n)
	if !c.stall {
		c.stall = true
		c.log.Warn("peer takes no data; dropping frames until it reads again", "port", c.name, "timeout", c.timeout)
	}
}

// writeFailed closes s after a failed write and returns the error
// WriteFrames reports.
func (c *Conn) writeFailed(s *session, err error) error {
	if c.closed.Load() {
		return c.errClosed
	}
	err = fmt.Errorf("%s: write: %w", c.name, err)
	if !c.kill(s, err) {
		// The reader saw the end first: the failure is old news.
		if c.dialled {
			return nil
		}
		return c.errGone
	}
	c.log.Info("write failed; closing the connection", "port", c.name, "err", err)
	if c.dialled {
		c.Errors.Add(1) // reported to nobody else: the engine sees no error
		return nil
	}
	return err // the engine counts it
}

// BatchSize is the most frames one ReadFrames call fills.
func (c *Conn) BatchSize() int { return c.batch }

// String describes the port for logs, e.g. "stream unix:/tmp/zsw.sock#1".
func (c *Conn) String() string { return c.name }

// Close closes the connection, which unblocks ReadFrames and WriteFrames,
// and stops a dialled Conn from dialling. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		if c.stopDial != nil {
			c.stopDial()
		}
		if s := c.cur.Load(); s != nil {
			c.kill(s, c.errClosed)
		}
		c.wg.Wait()
		c.LinkUp.Store(false)
		c.log.Info("port closed", "port", c.name)
	})
	return nil
}
