package stream

import (
	"encoding/binary"
	"net"
	"syscall"
	"unsafe"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A writer frames batches and sends each with one writev. A frame goes out
// as two iovecs: its length from hdr, then the frame itself. The header is
// never written into the frame's slot: a flooded frame is shared with other
// ports, read-only. It belongs to the goroutine calling WriteFrames.
type writer struct {
	hdr  [writeBatch][hdrLen]byte
	iov  [][]byte // backing array of bufs, 2*writeBatch entries
	bufs net.Buffers

	// rest is the unsent tail of a frame that a write deadline cut in
	// two. It must go out before anything else, or the peer would lose
	// the framing, as QEMU's own sender resumes (send_index). restBuf is
	// its storage, allocated the first time a peer stalls.
	rest    []byte
	restBuf []byte
	owner   *session // the connection rest belongs to

	// For tryWrite: owner's descriptor (nil if it has none), the iovecs
	// of one non-blocking writev, and that call's result. writevFn is
	// w.writev, made once so that handing it to Control does not allocate.
	raw      syscall.RawConn
	sysIov   [2 * tryBatch]syscall.Iovec
	niov     int
	wrote    int
	errno    syscall.Errno
	writevFn func(fd uintptr)
}

// tryBatch is the most frames one tryWrite sends: the engine's batches
// are 64 frames.
const tryBatch = 64

func newWriter() *writer {
	w := &writer{iov: make([][]byte, 0, 2*writeBatch)}
	w.writevFn = w.writev
	return w
}

// use makes s the connection written to. Another connection starts clean:
// a frame cut on the last one is forgotten.
func (w *writer) use(s *session) {
	if w.owner == s {
		return
	}
	w.owner, w.rest, w.raw = s, nil, nil
	if sc, ok := s.Conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
}

// write sends fs, at most writeBatch non-empty frames, and returns how many
// went out whole or were started: a frame cut short by an error is kept in
// rest and counts as sent. net.Buffers resumes partial writes itself, so an
// error means the connection failed or the deadline passed.
func (w *writer) write(conn net.Conn, fs []*frame.Frame) (int, error) {
	iov := w.iov[:0]
	for i, f := range fs {
		binary.BigEndian.PutUint32(w.hdr[i][:], uint32(f.Len()))
		iov = append(iov, w.hdr[i][:], f.Bytes())
	}
	w.bufs = iov
	nb, err := w.bufs.WriteTo(conn)
	clear(iov) // keep no reference to the frames
	if err == nil {
		return len(fs), nil
	}
	n, _ := w.settle(fs, nb)
	return n, err
}

// settle counts the frames of fs that nb written bytes cover and keeps
// the unsent rest of one cut short (it counts as sent, cut is true).
func (w *writer) settle(fs []*frame.Frame, nb int64) (n int, cut bool) {
	for _, f := range fs {
		l := int64(hdrLen + f.Len())
		if nb < l {
			break
		}
		nb -= l
		n++
	}
	if nb > 0 { // fs[n] went out in part
		w.keepRest(w.hdr[n][:], fs[n].Bytes(), int(nb))
		return n + 1, true
	}
	return n, false
}

// keepRest saves what is left of a frame (hdr, then b) after its first
// sent bytes.
func (w *writer) keepRest(hdr, b []byte, sent int) {
	if w.restBuf == nil {
		w.restBuf = make([]byte, hdrLen+DefaultMaxFrame)
	}
	r := append(append(w.restBuf[:0], hdr...), b...)
	w.rest = r[sent:]
}

// flushRest finishes a frame cut short on the same connection. Another
// connection starts clean.
func (w *writer) flushRest(s *session) error {
	w.use(s)
	for len(w.rest) > 0 {
		k, err := s.Conn.Write(w.rest)
		w.rest = w.rest[k:]
		if err != nil {
			return err
		}
	}
	return nil
}

// tryWrite sends what s's socket takes of fs (at most tryBatch non-empty
// frames) with one writev that does not wait, and returns how many frames
// went out whole or were started, and whether the last one was cut: its
// rest is then kept in rest. A full socket or an error sends nothing and
// leaves the error for the next blocking write to find.
func (w *writer) tryWrite(s *session, fs []*frame.Frame) (n int, cut bool) {
	w.use(s)
	if len(w.rest) > 0 || w.raw == nil {
		return 0, false
	}
	fs = fs[:min(len(fs), tryBatch)]
	for i, f := range fs {
		binary.BigEndian.PutUint32(w.hdr[i][:], uint32(f.Len()))
		w.sysIov[2*i].Base = &w.hdr[i][0]
		w.sysIov[2*i].SetLen(hdrLen)
		w.sysIov[2*i+1].Base = &f.Bytes()[0]
		w.sysIov[2*i+1].SetLen(f.Len())
	}
	w.niov, w.wrote, w.errno = 2*len(fs), 0, 0
	// Control, not Write: the socket is non-blocking, so the call cannot
	// wait, and a write deadline WriteFrames set earlier, passed since, does
	// not apply. WriteFrames is never running now (TryWriter).
	err := w.raw.Control(w.writevFn)
	clear(w.sysIov[:w.niov]) // keep no reference to the frames
	if err != nil || w.errno != 0 {
		return 0, false
	}
	return w.settle(fs, int64(w.wrote))
}

// writev is tryWrite's system call, run by Control on the socket.
func (w *writer) writev(fd uintptr) {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.sysIov[0])), uintptr(w.niov))
	w.wrote, w.errno = int(r), e
}

// sendable moves the frames fit to send to the front of fs, keeping their
// order, and counts the others: empty ones (runts; a zero length would
// break the framing) and those longer than maxFrame (QEMU would close the
// connection). It returns how many can be sent.
func sendable(s *ports.Stats, fs []*frame.Frame, maxFrame int) int {
	end := 0
	var runts, oversize uint64
	for i, f := range fs {
		switch l := f.Len(); {
		case l == 0:
			runts++
		case l > maxFrame:
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
