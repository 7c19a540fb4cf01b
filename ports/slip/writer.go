package slip

import (
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A writer encodes batches into one buffer and sends each with one write.
// It belongs to the goroutine calling WriteFrames.
type writer struct {
	buf  []byte // txBufSize, at least MaxEncodedLen(maxFrame)
	ends []int  // ends[i]: where frame i of the batch in buf ends

	// rest is the unsent tail of a frame that a write deadline cut in
	// two. It must go out before anything else, or the peer would take
	// the two halves around it for one broken packet. restBuf is its
	// storage, allocated the first time a peer stalls.
	rest    []byte
	restBuf []byte
	owner   *session // the session rest belongs to

	strip bool // ModeIP: send the IP packet of each frame, without the Ethernet header
}

func newWriter(maxFrame, batch int) *writer {
	return &writer{
		buf:  make([]byte, 0, max(txBufSize, MaxEncodedLen(maxFrame))),
		ends: make([]int, 0, batch),
	}
}

// fill encodes frames from the front of fs into the buffer while each is
// sure to fit, at least one, and returns how many.
func (w *writer) fill(fs []*frame.Frame) int {
	w.buf, w.ends = w.buf[:0], w.ends[:0]
	for _, f := range fs {
		if len(w.ends) == cap(w.ends) || len(w.buf)+MaxEncodedLen(f.Len()) > cap(w.buf) {
			break
		}
		b := f.Bytes()
		if w.strip {
			b = stripEthernet(b)
		}
		w.buf = AppendFrame(w.buf, b)
		w.ends = append(w.ends, len(w.buf))
	}
	return len(w.ends)
}

// written returns how many frames of the buffer went out whole or were
// started when k bytes were written, and keeps the rest of a frame cut
// short to finish it with flushRest.
func (w *writer) written(k int) int {
	n, start := 0, 0
	for n < len(w.ends) && w.ends[n] <= k {
		start = w.ends[n]
		n++
	}
	if n < len(w.ends) && k > start {
		if w.restBuf == nil {
			w.restBuf = make([]byte, 0, cap(w.buf))
		}
		w.rest = append(w.restBuf[:0], w.buf[k:w.ends[n]]...)
		n++
	}
	return n
}

// flushRest finishes a frame cut short on the same session. Another
// session starts clean.
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
// order, and counts the others: empty ones (runts; the peer would take
// the packet for a keepalive) and those longer than maxFrame. It returns
// how many can be sent.
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
