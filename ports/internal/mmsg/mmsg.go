// Package mmsg moves batches of datagrams through a socket with one
// recvmmsg or sendmmsg system call per batch, parking on Go's netpoller
// instead of blocking a thread, and without allocating per call.
//
// A Reader and a Writer each own the message headers and iovecs of one
// batch, allocated once. The caller points the iovecs at its own buffers
// (frame slots) before every call; the kernel reads or writes those buffers
// directly, so nothing is copied.
//
// x/sys exports unix.Mmsghdr but no wrappers for the two calls, so this
// package issues them with unix.Syscall6.
package mmsg

import (
	"syscall"
	"unsafe"

	"github.com/zswitch/zswitch/frame"
	"golang.org/x/sys/unix"
)

// A Reader receives up to a fixed number of datagrams per call. It is not
// safe for concurrent use: one goroutine reads.
type Reader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrAny // nil unless the Reader keeps source addresses
	ctrl  []byte                // nil unless EnableControl: csize bytes per message
	csize int

	// Set by fn, read by Read.
	vlen  int
	n     int
	errno syscall.Errno

	fn func(fd uintptr) bool // built once: a fresh closure per call would allocate
}

// NewReader returns a Reader for batches of up to batch datagrams from rc.
// With names set it records each datagram's source address (see Name).
func NewReader(rc syscall.RawConn, batch int, names bool) *Reader {
	batch = max(batch, 1)
	r := &Reader{
		rc:   rc,
		hdrs: make([]unix.Mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
	}
	if names {
		r.names = make([]unix.RawSockaddrAny, batch)
	}
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	r.fn = r.recv
	return r
}

// BatchSize is the most datagrams one Read receives.
func (r *Reader) BatchSize() int { return len(r.hdrs) }

// SetBuf points message i at b for the next Read. The buffer must stay
// valid until Read returns, which forgets it.
func (r *Reader) SetBuf(i int, b []byte) {
	if len(b) == 0 {
		r.iovs[i].Base = nil
	} else {
		r.iovs[i].Base = &b[0]
	}
	r.iovs[i].SetLen(len(b))
}

// Read waits until at least one datagram is available and receives up to n
// (at most BatchSize) into the buffers set with SetBuf. It returns how many
// it received; Len, Truncated and Name describe each. The error is the
// RawConn's (after Close it wraps net.ErrClosed) or the errno of recvmmsg.
func (r *Reader) Read(n int) (int, error) {
	n = min(n, len(r.hdrs))
	if n <= 0 {
		return 0, nil
	}
	r.vlen = n
	for i := range n {
		h := &r.hdrs[i].Hdr
		h.Flags = 0
		if r.names != nil {
			h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
			h.Namelen = unix.SizeofSockaddrAny
		}
		if r.ctrl != nil {
			h.Control = &r.ctrl[i*r.csize]
			h.SetControllen(r.csize)
		}
	}
	err := r.rc.Read(r.fn)
	clear(r.iovs[:n]) // keep no pointers into the caller's buffers
	if err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.n, nil
}

func (r *Reader) recv(fd uintptr) bool {
	for {
		// MSG_WAITFORONE: take what is queued after the first datagram,
		// never wait for more.
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.vlen),
			unix.MSG_DONTWAIT|unix.MSG_WAITFORONE, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // park on the netpoller until readable
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// EnableControl gives every message a buffer of size bytes (rounded up to
// a multiple of 8) for ancillary data, which Control returns after a Read.
// Call it before the first Read; it allocates once.
func (r *Reader) EnableControl(size int) {
	r.csize = (max(size, 1) + 7) &^ 7 // keeps each buffer cmsg-aligned
	r.ctrl = make([]byte, r.csize*len(r.hdrs))
}

// Control returns the ancillary data (control messages) of message i from
// the last Read, or nil without EnableControl. It is valid until the next
// Read.
func (r *Reader) Control(i int) []byte {
	if r.ctrl == nil {
		return nil
	}
	b := r.ctrl[i*r.csize : (i+1)*r.csize]
	return b[:min(int(r.hdrs[i].Hdr.Controllen), len(b))]
}

// Len is the number of bytes received in message i: the datagram length,
// or the buffer length when the datagram was truncated.
func (r *Reader) Len(i int) int { return int(r.hdrs[i].Len) }

// Truncated reports whether datagram i was longer than its buffer, and so
// was cut short.
func (r *Reader) Truncated(i int) bool { return r.hdrs[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// Name returns the raw source address (a struct sockaddr) of datagram i, or
// nil if the Reader keeps no names. It is valid until the next Read.
func (r *Reader) Name(i int) []byte {
	if r.names == nil {
		return nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&r.names[i])), unix.SizeofSockaddrAny)
	return b[:min(int(r.hdrs[i].Hdr.Namelen), len(b))]
}

// A Writer sends up to a fixed number of datagrams per call, to the socket's
// connected peer or to one destination fixed at creation. It is not safe for
// concurrent use: one goroutine writes.
type Writer struct {
	rc   syscall.RawConn
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	to   []byte // raw sockaddr, or nil for a connected socket

	// Set by fn, read by Write.
	off, end int
	errno    syscall.Errno
	nowait   bool // TryWrite: a full socket ends the call instead of parking

	fn func(fd uintptr) bool // built once
}

// NewWriter returns a Writer for batches of up to batch datagrams on rc,
// sent to the raw socket address to (see Sockaddr), or to the socket's
// peer if to is nil. The Writer keeps its own copy of to.
func NewWriter(rc syscall.RawConn, batch int, to []byte) *Writer {
	batch = max(batch, 1)
	w := &Writer{
		rc:   rc,
		hdrs: make([]unix.Mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
	}
	if len(to) > 0 {
		w.to = append([]byte(nil), to...)
	}
	for i := range w.hdrs {
		h := &w.hdrs[i].Hdr
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
		if w.to != nil {
			h.Name = &w.to[0]
			h.Namelen = uint32(len(w.to))
		}
	}
	w.fn = w.send
	return w
}

// BatchSize is the most datagrams one Write sends.
func (w *Writer) BatchSize() int { return len(w.hdrs) }

// SetBuf points message i at b for the next Write. The buffer must stay
// valid until Write returns, which forgets it.
func (w *Writer) SetBuf(i int, b []byte) {
	if len(b) == 0 {
		w.iovs[i].Base = nil
	} else {
		w.iovs[i].Base = &b[0]
	}
	w.iovs[i].SetLen(len(b))
}

// Write sends messages 0 to n-1 (n at most BatchSize) in order, as one
// datagram each. When the kernel takes only part of the batch it calls
// sendmmsg again for the rest; when the socket buffer is full it parks on
// the netpoller. It returns how many were sent; if that is less than n, err
// says why message sent failed (an unix.Errno, or the RawConn's error).
func (w *Writer) Write(n int) (sent int, err error) {
	return w.write(n, false)
}

// TryWrite is Write that never waits: it sends what the socket takes now
// and stops at a full socket buffer (sent < n, err nil) as at an error.
func (w *Writer) TryWrite(n int) (sent int, err error) {
	return w.write(n, true)
}

// TrySend sends fs, one datagram each and BatchSize per sendmmsg, as far
// as the socket takes them now (TryWrite), and returns how many it sent.
func (w *Writer) TrySend(fs []*frame.Frame) (sent int) {
	for sent < len(fs) {
		k := min(len(fs)-sent, len(w.hdrs))
		for j, f := range fs[sent : sent+k] {
			w.SetBuf(j, f.Bytes())
		}
		m, err := w.TryWrite(k)
		sent += m
		if m < k || err != nil {
			break
		}
	}
	return sent
}

func (w *Writer) write(n int, nowait bool) (sent int, err error) {
	n = min(n, len(w.hdrs))
	if n <= 0 {
		return 0, nil
	}
	w.off, w.end, w.errno, w.nowait = 0, n, 0, nowait
	err = w.rc.Write(w.fn)
	clear(w.iovs[:n]) // keep no pointers into the caller's buffers
	if err != nil {
		return w.off, err
	}
	if w.errno != 0 {
		return w.off, w.errno
	}
	return w.off, nil
}

func (w *Writer) send(fd uintptr) bool {
	for w.off < w.end {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&w.hdrs[w.off])), uintptr(w.end-w.off),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			w.off += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			// Park until writable, then go on from w.off; TryWrite stops.
			return w.nowait
		default:
			w.errno = e
			return true
		}
	}
	return true
}
