package wpan

import (
	"bytes"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

// refResult is what a stream decodes to, according to refDecode.
type refResult struct {
	frames   [][]byte
	bad      int  // garbage runs
	oversize int  // whole frames longer than the slot
	partial  bool // the stream ends inside a frame
}

// refDecode is the obvious decoder, given the whole stream at once: the
// oracle for Decoder.Decode fed in pieces.
func refDecode(data []byte, slot int) refResult {
	var r refResult
	garbage := false
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == 0 && !garbage:
			i++
		case c == StartByte && i+1 == len(data):
			r.partial = true
			return r
		case c == StartByte && data[i+1] >= 1 && data[i+1] <= MaxPSDU:
			l := int(data[i+1])
			if i+2+l > len(data) {
				r.partial = true
				return r
			}
			if l > slot {
				r.oversize++
			} else {
				r.frames = append(r.frames, data[i+2:i+2+l])
			}
			garbage = false
			i += 2 + l
		default:
			// A byte that starts nothing, or a start byte with an
			// impossible length (which may itself be a start byte: look
			// at it next).
			if !garbage {
				garbage = true
				r.bad++
			}
			i++
		}
	}
	return r
}

// decodeChunks feeds data to a fresh Decoder in chunks of chunk bytes into
// nslots slots of slot bytes, and returns what it decoded.
func decodeChunks(t testing.TB, data []byte, chunk, nslots, slot int) refResult {
	fs := make([]*frame.Frame, nslots)
	frame.NewPool(nslots, slot).Get(fs)
	var d Decoder
	var r refResult
	for off := 0; off < len(data); off += chunk {
		b := data[off:min(off+chunk, len(data))]
		for first := true; first || len(b) > 0; first = false {
			n, used, bad, over := d.Decode(b, fs)
			if used > len(b) || n > len(fs) {
				t.Fatalf("Decode used %d of %d bytes, filled %d of %d slots", used, len(b), n, len(fs))
			}
			if n == 0 && used < len(b) {
				t.Fatalf("Decode made no progress: used %d of %d bytes with %d free slots", used, len(b), len(fs))
			}
			for _, f := range fs[:n] {
				r.frames = append(r.frames, bytes.Clone(f.Bytes()))
			}
			r.bad += bad
			r.oversize += over
			b = b[used:]
		}
	}
	// A frame complete at the end of the last chunk may wait for a slot.
	n, _, _, _ := d.Decode(nil, fs)
	for _, f := range fs[:n] {
		r.frames = append(r.frames, bytes.Clone(f.Bytes()))
	}
	r.partial = d.Partial()
	return r
}

func checkDecode(t testing.TB, data []byte, chunk, nslots, slot int) {
	t.Helper()
	want := refDecode(data, slot)
	got := decodeChunks(t, data, chunk, nslots, slot)
	same(t, "decoded", got.frames, want.frames)
	if got.bad != want.bad || got.oversize != want.oversize || got.partial != want.partial {
		t.Fatalf("chunk %d, %d slots of %d: bad %d oversize %d partial %v; want %d %d %v",
			chunk, nslots, slot, got.bad, got.oversize, got.partial, want.bad, want.oversize, want.partial)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	var want [][]byte
	for size := 1; size <= MaxPSDU; size++ {
		want = append(want, psdu(size, size))
	}
	stream := encode(want...)
	got := decodeChunks(t, stream, len(stream), 64, slotSize)
	same(t, "decoded", got.frames, want)
	if got.bad != 0 || got.oversize != 0 || got.partial {
		t.Fatalf("clean stream: bad %d, oversize %d, partial %v", got.bad, got.oversize, got.partial)
	}
}

// TestDecodeSplit cuts a stream at every byte, and feeds it one byte at a
// time, with one slot and with many.
func TestDecodeSplit(t *testing.T) {
	stream := encode(psdu(1, 5), psdu(2, 127), []byte{0xF0}, psdu(3, 1), psdu(4, 40))
	for cut := 0; cut <= len(stream); cut++ {
		for _, nslots := range []int{1, 3} {
			a, b := stream[:cut], stream[cut:]
			fs := make([]*frame.Frame, nslots)
			frame.NewPool(nslots, slotSize).Get(fs)
			var d Decoder
			var got [][]byte
			for _, part := range [][]byte{a, b, nil} {
				for first := true; first || len(part) > 0; first = false {
					n, used, bad, over := d.Decode(part, fs)
					if bad != 0 || over != 0 {
						t.Fatalf("cut at %d: bad %d oversize %d", cut, bad, over)
					}
					for _, f := range fs[:n] {
						got = append(got, bytes.Clone(f.Bytes()))
					}
					part = part[used:]
				}
			}
			same(t, "decoded", got, [][]byte{psdu(1, 5), psdu(2, 127), {0xF0}, psdu(3, 1), psdu(4, 40)})
		}
	}
	checkDecode(t, stream, 1, 1, slotSize)
}

func TestDecodeLeadingZeros(t *testing.T) {
	stream := append(make([]byte, 16), encode(psdu(1, 10))...)
	stream = append(stream, 0, 0, 0) // between frames too
	stream = append(stream, encode(psdu(2, 3))...)
	got := decodeChunks(t, stream, 7, 4, slotSize)
	same(t, "decoded", got.frames, [][]byte{psdu(1, 10), psdu(2, 3)})
	if got.bad != 0 {
		t.Fatalf("zeros counted as %d garbage runs, want none", got.bad)
	}
}

func TestDecodeGarbage(t *testing.T) {
	good := encode(psdu(1, 10))
	for _, tc := range []struct {
		name    string
		garbage []byte
		bad     int
	}{
		{"text", []byte("hello, world"), 1},
		{"len-zero", []byte{0xF0, 0x00}, 1},
		{"len-128", []byte{0xF0, 0x80, 1, 2, 3}, 1},
		{"len-255", []byte{0xF0, 0xFF}, 1},
		{"start-start", []byte{0x55, 0xF0, 0xF0, 0x00, 0xF0}, 1},
		{"zeros-inside", []byte{0x01, 0x00, 0x00, 0x02}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := append(append(append([]byte(nil), good...), tc.garbage...), good...)
			for _, chunk := range []int{1, 2, len(stream)} {
				got := decodeChunks(t, stream, chunk, 2, slotSize)
				same(t, "decoded", got.frames, [][]byte{psdu(1, 10), psdu(1, 10)})
				if got.bad != tc.bad {
					t.Fatalf("chunk %d: %d garbage runs, want %d", chunk, got.bad, tc.bad)
				}
				checkDecode(t, stream, chunk, 2, slotSize)
			}
		})
	}
	// Two runs with a frame between them count twice.
	stream := encode(psdu(1, 4))
	stream = append([]byte{0x13, 0x37}, stream...)
	stream = append(stream, 0xF0, 0x00)
	if got := decodeChunks(t, stream, 3, 1, slotSize); got.bad != 2 || len(got.frames) != 1 {
		t.Fatalf("two garbage runs around a frame: %d runs, %d frames; want 2, 1", got.bad, len(got.frames))
	}
}

func TestDecodeOversizeForSlot(t *testing.T) {
	stream := encode(psdu(1, 100), psdu(2, 20))
	got := decodeChunks(t, stream, 5, 2, 64)
	same(t, "decoded", got.frames, [][]byte{psdu(2, 20)})
	if got.oversize != 1 {
		t.Fatalf("oversize %d, want 1", got.oversize)
	}
}

func TestDecodeAllocs(t *testing.T) {
	stream := encode(psdu(1, 60), psdu(2, 127), psdu(3, 5))
	fs := frames(t, 4)
	var d Decoder
	allocs := testing.AllocsPerRun(1000, func() {
		for b := stream; len(b) > 0; {
			_, used, _, _ := d.Decode(b[:min(len(b), 50)], fs)
			b = b[used:]
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode allocates %.1f times per stream", allocs)
	}
}

// FuzzWPANDecode feeds a stream to the decoder in chunks of one size into
// a few slots of another size, and checks the frames, the garbage runs, the
// oversize frames and the partial state against refDecode.
func FuzzWPANDecode(f *testing.F) {
	f.Add(encode(psdu(1, 10)), uint8(0), uint8(3), uint8(127))
	f.Add(append(make([]byte, 4), encode(psdu(1, 10), psdu(2, 127))...), uint8(1), uint8(0), uint8(127))
	f.Add([]byte{0xF0, 0x00, 0xF0, 0x80, 0xF0, 0xF0, 0x02, 0x41, 0x88}, uint8(2), uint8(1), uint8(127))
	f.Add(append([]byte("garbage"), encode(psdu(3, 1))...), uint8(0), uint8(0), uint8(127))
	f.Add(encode(psdu(1, 100), psdu(2, 20)), uint8(4), uint8(1), uint8(50))
	f.Add(encode(psdu(1, 127))[:60], uint8(9), uint8(2), uint8(127))
	f.Fuzz(func(t *testing.T, data []byte, split, nslots, slot uint8) {
		checkDecode(t, data, 1+int(split), 1+int(nslots)%8, 1+int(slot)%slotSize)
	})
}
