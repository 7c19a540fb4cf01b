package stream

import (
	"encoding/binary"
	"net"

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
}

func newWriter() *writer {
	return &writer{iov: make([][]byte, 0, 2*writeBatch)}
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
	n := 0
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
		n++
	}
	return n, err
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
	if w.owner != s {
		w.owner, w.rest = s, nil
	}
	for len(w.rest) > 0 {
		k, err := s.Conn.Write(w.rest)
		w.rest = w.rest[k:]
		if err != nil {
			return err
		}
	}
	return nil
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
