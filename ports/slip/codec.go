package slip

import (
	"bytes"

	"github.com/zswitch/zswitch/frame"
)

// MaxEncodedLen is the longest a packet of n bytes can be once encoded:
// every byte escaped, plus the two Ends.
func MaxEncodedLen(n int) int { return 2*n + 2 }

// AppendFrame appends p to dst as one SLIP packet: End, p with End and Esc
// escaped, End. It allocates only when dst lacks the room, at most
// MaxEncodedLen(len(p)) bytes.
func AppendFrame(dst, p []byte) []byte {
	dst = append(dst, End)
	// e and x cache where the next End and Esc are (len(p): none), so
	// each byte of p is searched once for each, however they alternate.
	e, x := -1, -1
	for i := 0; ; {
		if e < i {
			e = indexFrom(p, i, End)
		}
		if x < i {
			x = indexFrom(p, i, Esc)
		}
		k := min(e, x)
		dst = append(dst, p[i:k]...)
		if k == len(p) {
			return append(dst, End)
		}
		if p[k] == End {
			dst = append(dst, Esc, EscEnd)
		} else {
			dst = append(dst, Esc, EscEsc)
		}
		i = k + 1
	}
}

// indexFrom is the index of the first c in b at or after i, or len(b).
func indexFrom(b []byte, i int, c byte) int {
	if k := bytes.IndexByte(b[i:], c); k >= 0 {
		return i + k
	}
	return len(b)
}

// Decoder states, between and within calls.
const (
	stIdle     = iota // between packets: after an End, or at the start
	stData            // inside a packet
	stGarbage         // inside a packet with a bad escape: skipping to the next End
	stOversize        // inside a packet too long: skipping to the next End
)

// A Decoder cuts frames out of a SLIP byte stream fed to it in chunks of
// any size, as reads deliver it. It decodes straight into the frame slots
// it is given. A frame still incomplete when a chunk ends is kept in the
// Decoder (one copy) and finished in the next call's first slot.
//
// The zero Decoder is not ready; use NewDecoder. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	max   int
	state uint8
	esc   bool   // stData: the last byte was Esc
	part  []byte // stData between calls: the frame so far; capacity max
}

// NewDecoder returns a Decoder that takes frames of up to max bytes, and
// of up to the capacity of the slot it decodes each into.
func NewDecoder(max int) *Decoder {
	return &Decoder{max: max, part: make([]byte, 0, max)}
}

// Reset forgets a packet in progress, as at the start of a new stream.
func (d *Decoder) Reset() {
	d.state, d.esc, d.part = stIdle, false, d.part[:0]
}

// Partial reports whether the decoder is inside a packet not yet counted
// as a frame or a drop: the stream ended in the middle of it if no more
// comes.
func (d *Decoder) Partial() bool { return d.state == stData }

// Decode decodes b into the slots of fs, in order, and returns how many it
// filled, how many bytes of b it used, and how many packets it discarded
// as bad framing (an invalid escape) and as oversize (longer than max or
// than the slot). Empty packets are ignored.
//
// It uses all of b unless fs fills up: then it stops before the next
// packet starts, and the caller passes the rest of b again.
func (d *Decoder) Decode(b []byte, fs []*frame.Frame) (n, used, bad, oversize int) {
	var (
		dst []byte // the slot the current frame goes to, cut to the limit
		l   int    // bytes of the current frame in dst
	)
	i := 0
	if d.state == stData {
		if len(fs) == 0 {
			return 0, 0, 0, 0
		}
		dst = fs[0].Space()[:min(d.max, fs[0].Cap())]
		if len(d.part) > len(dst) {
			d.state = stOversize
			oversize++
		} else {
			l = copy(dst, d.part)
		}
		d.part = d.part[:0]
	}
	// The next End and Esc in b, as in AppendFrame.
	e, x := -1, -1
	for i < len(b) {
		switch d.state {
		case stIdle:
			for i < len(b) && b[i] == End {
				i++
			}
			if i == len(b) || n == len(fs) {
				return n, i, bad, oversize
			}
			d.state, d.esc = stData, false
			dst, l = fs[n].Space()[:min(d.max, fs[n].Cap())], 0

		case stData:
			if d.esc {
				d.esc = false
				var c byte
				switch b[i] {
				case EscEnd:
					c = End
				case EscEsc:
					c = Esc
				case End:
					// The End still ends the packet, so the next one is intact.
					d.state = stIdle
					bad++
					i++
					continue
				default:
					d.state = stGarbage
					bad++
					i++
					continue
				}
				if l == len(dst) {
					d.state = stOversize
					oversize++
					continue
				}
				dst[l] = c
				l++
				i++
				continue
			}
			if e < i {
				e = indexFrom(b, i, End)
			}
			if x < i {
				x = indexFrom(b, i, Esc)
			}
			k := min(e, x)
			if l+k-i > len(dst) {
				d.state = stOversize
				oversize++
				continue
			}
			l += copy(dst[l:], b[i:k])
			i = k
			if k == len(b) {
				break
			}
			i++
			if b[k] == Esc {
				d.esc = true
				continue
			}
			d.state = stIdle
			if l > 0 {
				fs[n].SetLen(l)
				n++
			}

		default: // stGarbage, stOversize
			if e < i {
				e = indexFrom(b, i, End)
			}
			if e == len(b) {
				return n, len(b), bad, oversize
			}
			i = e + 1
			d.state = stIdle
		}
	}
	if d.state == stData {
		d.part = append(d.part[:0], dst[:l]...)
	}
	return n, len(b), bad, oversize
}
