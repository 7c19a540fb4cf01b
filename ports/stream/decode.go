package stream

import (
	"encoding/binary"
	"strconv"

	"github.com/zswitch/zswitch/frame"
)

// hdrLen is the size of the length that precedes every frame.
const hdrLen = 4

// A decoder cuts frames out of QEMU's stream framing. It is fed the bytes
// received so far and keeps only what must survive between reads: the rest
// of an oversize frame still to skip. A frame split across reads stays in
// the caller's buffer until it is whole.
type decoder struct {
	max  int // longest frame kept; longer valid ones are skipped
	skip int // bytes of an oversize frame still to discard
}

// A lengthError is a frame length QEMU would never send: 0 or above
// DefaultMaxFrame. The stream cannot be followed past it.
type lengthError uint32

func (e lengthError) Error() string {
	return "bad frame length " + strconv.FormatUint(uint64(e), 10)
}

// decode copies the frames at the start of b into the slots of fs, in
// order, and returns how many it filled, how many bytes of b it used, and
// how many frames it skipped as oversize (longer than max or than the
// next slot). It stops when fs is full, when b ends inside a frame, or at
// an invalid length: then err is a lengthError and the header is left
// unused in b.
func (d *decoder) decode(b []byte, fs []*frame.Frame) (n, used, skipped int, err error) {
	for {
		if d.skip > 0 {
			k := min(d.skip, len(b)-used)
			d.skip -= k
			used += k
			if d.skip > 0 {
				return n, used, skipped, nil
			}
		}
		if n == len(fs) || len(b)-used < hdrLen {
			return n, used, skipped, nil
		}
		l := binary.BigEndian.Uint32(b[used:])
		if l == 0 || l > DefaultMaxFrame {
			return n, used, skipped, lengthError(l)
		}
		size := int(l)
		if size > d.max || size > fs[n].Cap() {
			used += hdrLen
			d.skip = size
			skipped++
			continue
		}
		if len(b)-used-hdrLen < size {
			return n, used, skipped, nil
		}
		start := used + hdrLen
		fs[n].SetLen(copy(fs[n].Space(), b[start:start+size]))
		used = start + size
		n++
	}
}

// A reader is a port's receive buffer: buf[r:w] was received and not yet
// decoded. It belongs to the goroutine calling ReadFrames.
type reader struct {
	buf  []byte
	r, w int
	dec  decoder
}

func newReader(maxFrame int) reader {
	return reader{buf: make([]byte, rxBufSize), dec: decoder{max: maxFrame}}
}

// reset forgets everything from an earlier connection.
func (rd *reader) reset() {
	rd.r, rd.w, rd.dec.skip = 0, 0, 0
}

// decode fills fs from the buffered bytes; see decoder.decode.
func (rd *reader) decode(fs []*frame.Frame) (n, skipped int, err error) {
	n, used, skipped, err := rd.dec.decode(rd.buf[rd.r:rd.w], fs)
	rd.r += used
	return n, skipped, err
}

// space moves an incomplete frame to the front of the buffer and returns
// the free space after it. It is never empty: decode leaves at most one
// incomplete frame, and the buffer holds the longest.
func (rd *reader) space() []byte {
	if rd.r == rd.w {
		rd.r, rd.w = 0, 0
	} else if rd.r > 0 {
		rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.r = 0
	}
	return rd.buf[rd.w:]
}

// partial reports whether the buffer ends inside a frame that was not
// already counted: the peer went away in the middle of it.
func (rd *reader) partial() bool { return rd.r < rd.w }
