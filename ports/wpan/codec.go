package wpan

import "github.com/zswitch/zswitch/frame"

// StartByte opens every frame on the UART pipe
// (UART_PIPE_RADIO_15_4_FRAME_TYPE in Zephyr's upipe driver).
const StartByte = 0xF0

// MaxPSDU is the longest 802.15.4 PSDU (aMaxPhyPacketSize): the largest
// LEN a frame can carry.
const MaxPSDU = 127

// MaxEncodedLen is the longest encoded frame: start byte, LEN, PSDU.
const MaxEncodedLen = 2 + MaxPSDU

// AppendFrame appends psdu framed for the pipe (F0, LEN, PSDU) to dst and
// returns the extended slice. psdu must be 1 to MaxPSDU bytes long; the
// caller checks.
func AppendFrame(dst, psdu []byte) []byte {
	dst = append(dst, StartByte, byte(len(psdu)))
	return append(dst, psdu...)
}

// Decoder states, between and within calls.
const (
	stIdle    = iota // between frames: 0x00 sync bytes are skipped
	stLen            // after a start byte: the next byte is LEN
	stData           // inside a frame: need more PSDU bytes
	stGarbage        // after bytes that fit no frame: waiting for a start byte
)

// A Decoder cuts 802.15.4 frames out of the UART pipe byte stream fed to
// it in chunks of any size, as reads deliver it.
//
// Between frames it skips 0x00 bytes (Zephyr and monitor_15_4 send some
// at start-up to sync). Any other byte that does not start a frame, and a
// LEN of 0 or above 127, start a garbage run: the decoder counts it once
// as bad framing and resynchronises at the next start byte followed by a
// plausible LEN. It emits only frames that arrived whole and correctly
// framed; the pipe carries no FCS, so it cannot check more than that.
//
// The zero Decoder is ready to use. It is not safe for concurrent use.
type Decoder struct {
	state   uint8
	garbage bool // inside a garbage run already counted
	need    int  // stData: PSDU bytes still to come
	have    int  // stData: PSDU bytes in part
	part    [MaxPSDU]byte
}

// Reset forgets a frame in progress, as at the start of a new stream.
func (d *Decoder) Reset() { d.state, d.garbage, d.need, d.have = stIdle, false, 0, 0 }

// Partial reports whether the decoder is inside a frame: the stream ended
// in the middle of it if no more comes.
func (d *Decoder) Partial() bool { return d.state == stLen || d.state == stData && d.need > 0 }

// Decode decodes b into the slots of fs, in order, and returns how many it
// filled, how many bytes of b it used, how many garbage runs started
// (bad framing) and how many whole frames it skipped because they did not
// fit their slot (oversize).
//
// It uses all of b unless fs fills up: then it stops before the next
// frame's start byte, and the caller passes the rest of b again.
func (d *Decoder) Decode(b []byte, fs []*frame.Frame) (n, used, bad, oversize int) {
	i := 0
	for {
		if d.state == stData && d.need == 0 {
			// A whole frame: hand it over when there is a slot for it.
			if n == len(fs) {
				return n, i, bad, oversize
			}
			d.state = stIdle
			if d.have > fs[n].Cap() {
				oversize++
			} else {
				fs[n].SetLen(copy(fs[n].Space(), d.part[:d.have]))
				n++
			}
		}
		if i == len(b) {
			return n, i, bad, oversize
		}
		switch d.state {
		case stIdle, stGarbage:
			c := b[i]
			switch {
			case c == StartByte:
				if n == len(fs) {
					return n, i, bad, oversize
				}
				d.state = stLen
			case c == 0 && !d.garbage:
				// Sync filler between frames.
			default:
				d.state = stGarbage
				if !d.garbage {
					d.garbage = true
					bad++
				}
			}
			i++
		case stLen:
			l := int(b[i])
			i++
			if l >= 1 && l <= MaxPSDU {
				d.state, d.garbage, d.need, d.have = stData, false, l, 0
				continue
			}
			if !d.garbage {
				d.garbage = true
				bad++
			}
			// A start byte where LEN should be may open the real frame.
			if d.state = stGarbage; l == StartByte {
				d.state = stLen
			}
		case stData:
			k := copy(d.part[d.have:d.have+d.need], b[i:])
			d.have += k
			d.need -= k
			i += k
		}
	}
}
