package zbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// endpoint is one emulated guest NIC: a byte stream with a length prefix
// of framing bytes (4: QEMU stream, 2: vde_plug stdio), or a packet fd
// (framing 0: one frame per read/write, e.g. a TAP), or a datagram socket
// moved in batches with sendmmsg/recvmmsg (mw set).
type endpoint struct {
	name    string
	mac     [6]byte
	w       io.Writer // the stream, or single frames
	mw      *mmsgWriter
	framing int
	rd      *frameReader
	// setReadDeadline unblocks a reader at the end of a run.
	setReadDeadline func(time.Time) error
	closers         []io.Closer
}

func newEndpoint(name string, mac [6]byte, r io.Reader, w io.Writer, framing int, dl func(time.Time) error, closers ...io.Closer) *endpoint {
	return &endpoint{
		name: name, mac: mac, w: w, framing: framing,
		rd:              &frameReader{r: r, framing: framing, buf: make([]byte, 256<<10)},
		setReadDeadline: dl, closers: closers,
	}
}

// rwDeadliner is a pollable file or connection (socket, TAP fd).
type rwDeadliner interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

// fileEndpoint wraps one pollable file or connection for both ways.
func fileEndpoint(name string, mac [6]byte, f rwDeadliner, framing int) *endpoint {
	return newEndpoint(name, mac, f, f, framing, f.SetReadDeadline, f)
}

// dgramEndpoint wraps datagram sockets (rx and tx may be one) given as
// non-blocking fds: frames are received with recvmmsg and sent with
// sendmmsg, 64 per call; tx must be connected or bound so plain sends
// reach the switch.
func dgramEndpoint(name string, mac [6]byte, rxFD, txFD int) (*endpoint, error) {
	rx := os.NewFile(uintptr(rxFD), name+"-rx")
	tx := rx
	if txFD != rxFD {
		tx = os.NewFile(uintptr(txFD), name+"-tx")
	}
	rrc, err := rx.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	wrc, err := tx.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	closers := []io.Closer{rx}
	if tx != rx {
		closers = append(closers, tx)
	}
	e := &endpoint{name: name, mac: mac, w: tx, mw: newMmsgWriter(wrc),
		rd:              &frameReader{mr: newMmsgReader(rrc)},
		setReadDeadline: rx.SetReadDeadline, closers: closers}
	return e, nil
}

func (e *endpoint) close() {
	for _, c := range e.closers {
		c.Close()
	}
}

// frameReader returns frames one by one out of large reads (streams),
// single reads (packet fds) or recvmmsg batches (mr). Its state survives
// runs: a frame cut by the end of one run is finished in the next.
type frameReader struct {
	r        io.Reader
	mr       *mmsgReader
	framing  int
	buf      []byte
	off, end int    // stream: buf[off:end] unparsed; mmsg: datagrams off..end-1 left
	reads    uint64 // reads that returned data
	// beforeRead, if set, runs before every read: the frames handed out so
	// far are all processed (the receiver publishes its progress).
	beforeRead func()
}

var errFraming = errors.New("bad framing")

// next returns the next frame; it stays valid until the following call.
func (r *frameReader) next() ([]byte, error) {
	switch {
	case r.mr != nil:
		if r.off < r.end {
			r.off++
			return r.mr.frame(r.off - 1), nil
		}
		if r.beforeRead != nil {
			r.beforeRead()
		}
		n, err := r.mr.read()
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return nil, err
		}
		r.reads++
		r.off, r.end = 1, n
		return r.mr.frame(0), nil
	case r.framing == 0:
		if r.beforeRead != nil {
			r.beforeRead()
		}
		n, err := r.r.Read(r.buf)
		if n > 0 {
			r.reads++
			return r.buf[:n], nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	for {
		if avail := r.buf[r.off:r.end]; len(avail) >= r.framing {
			var l int
			if r.framing == 4 {
				l = int(binary.BigEndian.Uint32(avail))
			} else {
				l = int(binary.BigEndian.Uint16(avail))
			}
			if l == 0 || l > maxFrame {
				return nil, errFraming
			}
			if len(avail) >= r.framing+l {
				r.off += r.framing + l
				return avail[r.framing : r.framing+l], nil
			}
		}
		if r.off > 0 {
			r.end = copy(r.buf, r.buf[r.off:r.end])
			r.off = 0
		}
		if r.beforeRead != nil {
			r.beforeRead()
		}
		n, err := r.r.Read(r.buf[r.end:])
		if n > 0 {
			r.reads++
			r.end += n
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}

// drain discards whatever waits on the endpoint (frames of an earlier run,
// a hub's copies of our own frames, announces) until it has been quiet
// for d.
func (e *endpoint) drain(d time.Duration) {
	for {
		e.setReadDeadline(time.Now().Add(d))
		if _, err := e.rd.next(); err != nil {
			break
		}
	}
	e.setReadDeadline(time.Time{})
}

// sendOne writes a single frame of the given kind (announce), outside any
// measurement.
func (e *endpoint) sendOne(dst [6]byte, flow, kind uint16, size int) error {
	b := make([]byte, e.framing+size)
	putLen(b, e.framing, size)
	writeFrameHeader(b[e.framing:], e.mac, dst, flow, kind)
	return e.write(b)
}

// write sends one frame (with its prefix on a stream).
func (e *endpoint) write(b []byte) error {
	_, err := e.w.Write(b)
	if errors.Is(err, syscall.ENOBUFS) {
		return nil // dropped by a device queue: loss, not a failure
	}
	return err
}
