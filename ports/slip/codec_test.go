package slip

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

// specials are frames that are mostly what SLIP escapes.
func specials() map[string][]byte {
	alt := make([]byte, 1518)
	for i := range alt {
		alt[i] = []byte{0xC0, 0xDB, 0xDC, 0xDD}[i%4]
	}
	rnd := make([]byte, 1518)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	return map[string][]byte{
		"one byte":         {0x42},
		"one End":          {0xC0},
		"one Esc":          {0xDB},
		"zephyr example":   {0xC0, 0xDB, 0x01}, // C0 DB DC DB DD 01 C0 on the wire
		"all End":          bytes.Repeat([]byte{0xC0}, 1518),
		"all Esc":          bytes.Repeat([]byte{0xDB}, 1518),
		"Esc codes alone":  bytes.Repeat([]byte{0xDC, 0xDD}, 100),
		"alternating":      alt,
		"random max-size":  rnd,
		"eth 60":           ethFrame(1, 60),
		"eth 1514":         ethFrame(2, 1514),
		"eth 1518":         ethFrame(3, 1518),
		"eth runt 13":      ethFrame(4, 13),
		"text":             []byte("GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n padded to look like an ethernet frame"),
		"tunslip6 control": []byte("!M0000000000000000"),
	}
}

func TestAppendFrameMatchesReference(t *testing.T) {
	for name, f := range specials() {
		got := AppendFrame(nil, f)
		if want := refEncode(f); !bytes.Equal(got, want) {
			t.Errorf("%s: encoded % x..., want % x...", name, got[:min(16, len(got))], want[:min(16, len(want))])
		}
		if len(got) > MaxEncodedLen(len(f)) {
			t.Errorf("%s: %d bytes encoded, over MaxEncodedLen %d", name, len(got), MaxEncodedLen(len(f)))
		}
	}
	if got := AppendFrame(nil, []byte{0xC0, 0xDB, 0x01}); !bytes.Equal(got, []byte{0xC0, 0xDB, 0xDC, 0xDB, 0xDD, 0x01, 0xC0}) {
		t.Fatalf("Zephyr's example: % x", got)
	}
}

// decodeAll feeds chunks to a decoder with batch slots, and returns the
// frames and drops.
func decodeAll(t testing.TB, d *Decoder, batch, slot int, chunks ...[]byte) (got [][]byte, bad, oversize int) {
	t.Helper()
	fs := frames(t, batch, slot)
	for _, b := range chunks {
		for {
			n, used, k, o := d.Decode(b, fs)
			bad += k
			oversize += o
			for _, f := range fs[:n] {
				got = append(got, bytes.Clone(f.Bytes()))
			}
			if used < len(b) && n != len(fs) {
				t.Fatalf("Decode used %d of %d bytes with %d of %d slots filled", used, len(b), n, len(fs))
			}
			b = b[used:]
			if len(b) == 0 {
				break
			}
		}
	}
	return got, bad, oversize
}

func TestRoundTrip(t *testing.T) {
	var stream []byte
	var want [][]byte
	for _, f := range specials() {
		stream = AppendFrame(stream, f)
		want = append(want, f)
	}
	got, bad, oversize := decodeAll(t, NewDecoder(DefaultMaxFrame), 4, frame.DefaultSlotSize, stream)
	sameFrames(t, got, want)
	if bad != 0 || oversize != 0 {
		t.Fatalf("bad %d oversize %d", bad, oversize)
	}
}

// TestSplitEveryByte cuts a stream of frames full of escapes in two at
// every byte, and feeds it one byte at a time.
func TestSplitEveryByte(t *testing.T) {
	want := [][]byte{ethFrame(1, 14), {0xC0}, {0xDB, 0xC0, 0xDB}, ethFrame(2, 300), {0xDB}}
	stream := refEncode(want...)
	for cut := range len(stream) + 1 {
		d := NewDecoder(DefaultMaxFrame)
		got, bad, oversize := decodeAll(t, d, 2, frame.DefaultSlotSize, stream[:cut], stream[cut:])
		sameFrames(t, got, want)
		if bad != 0 || oversize != 0 || d.Partial() {
			t.Fatalf("cut at %d: bad %d oversize %d partial %v", cut, bad, oversize, d.Partial())
		}
	}
	var chunks [][]byte
	for i := range stream {
		chunks = append(chunks, stream[i:i+1])
	}
	got, _, _ := decodeAll(t, NewDecoder(DefaultMaxFrame), 1, frame.DefaultSlotSize, chunks...)
	sameFrames(t, got, want)
}

func TestEmptyPacketsIgnored(t *testing.T) {
	good := ethFrame(1, 60)
	stream := append([]byte{0xC0, 0xC0, 0xC0}, refEncode(good)...)
	stream = append(stream, 0xC0, 0xC0)
	got, bad, oversize := decodeAll(t, NewDecoder(DefaultMaxFrame), 4, frame.DefaultSlotSize, stream)
	sameFrames(t, got, [][]byte{good})
	if bad != 0 || oversize != 0 {
		t.Fatalf("bad %d oversize %d for empty packets", bad, oversize)
	}
}

// TestBadEscapeResyncs: a packet with an invalid escape is dropped up to
// the next End, and the frame after it arrives whole.
func TestBadEscapeResyncs(t *testing.T) {
	a, b := ethFrame(1, 60), ethFrame(2, 70)
	for name, garbage := range map[string][]byte{
		"DB 00":      {0xC0, 0x01, 0x02, 0xDB, 0x00, 0x03, 0xDB, 0xDC, 0xC0},
		"DB DB":      {0xC0, 0x01, 0xDB, 0xDB, 0xDD, 0xC0},
		"DB End":     {0xC0, 0x01, 0x02, 0xDB, 0xC0},
		"only DB":    {0xDB, 0xC0},
		"no leading": {0x01, 0xDB, 0x41, 0x41, 0xC0},
	} {
		stream := append(append(refEncode(a), garbage...), refEncode(b)...)
		for cut := range len(stream) + 1 {
			d := NewDecoder(DefaultMaxFrame)
			got, bad, oversize := decodeAll(t, d, 4, frame.DefaultSlotSize, stream[:cut], stream[cut:])
			sameFrames(t, got, [][]byte{a, b})
			if bad != 1 || oversize != 0 {
				t.Fatalf("%s, cut at %d: bad %d oversize %d, want 1 0", name, cut, bad, oversize)
			}
		}
	}
	// "DB End" lost no frame: the End after the Esc still ended the
	// packet, so even a frame without a leading End survives.
	stream := []byte{0x01, 0xDB, 0xC0, 0x02, 0x03, 0xC0}
	got, bad, _ := decodeAll(t, NewDecoder(DefaultMaxFrame), 4, frame.DefaultSlotSize, stream)
	sameFrames(t, got, [][]byte{{2, 3}})
	if bad != 1 {
		t.Fatalf("bad %d, want 1", bad)
	}
}

func TestOversize(t *testing.T) {
	good := ethFrame(1, 100)
	for _, tc := range []struct {
		name      string
		max, slot int
	}{{"MaxFrame", 100, frame.DefaultSlotSize}, {"slot", DefaultMaxFrame, 100}} {
		t.Run(tc.name, func(t *testing.T) {
			stream := refEncode(ethFrame(0, 101), good, bytes.Repeat([]byte{0xC0}, 101), good)
			for cut := range len(stream) + 1 {
				got, bad, oversize := decodeAll(t, NewDecoder(tc.max), 4, tc.slot, stream[:cut], stream[cut:])
				sameFrames(t, got, [][]byte{good, good})
				if bad != 0 || oversize != 2 {
					t.Fatalf("cut at %d: bad %d oversize %d, want 0 2", cut, bad, oversize)
				}
			}
		})
	}
}

// TestNoTextSwallowing: tunslip6 prints packets that look like text
// instead of forwarding them; a frame is a frame here.
func TestNoTextSwallowing(t *testing.T) {
	want := [][]byte{
		[]byte("!M0011223344556677"),
		[]byte("?P"),
		[]byte("\rdebug line that is a frame"),
		bytes.Repeat([]byte("ABCDEFGHIJKLMNOP"), 80)[:1280],
		append([]byte{0, 0, 0, 0, 0, 0, '\t', '\n', ' '}, "  printable  "...),
	}
	got, bad, oversize := decodeAll(t, NewDecoder(DefaultMaxFrame), 8, frame.DefaultSlotSize, refEncode(want...))
	sameFrames(t, got, want)
	if bad != 0 || oversize != 0 {
		t.Fatalf("bad %d oversize %d", bad, oversize)
	}
}

// TestDecodeStopsWhenFull: with fewer slots than frames, Decode stops
// before the next packet and leaves its bytes to the caller.
func TestDecodeStopsWhenFull(t *testing.T) {
	want := [][]byte{ethFrame(1, 20), ethFrame(2, 30), ethFrame(3, 40)}
	stream := refEncode(want...)
	d := NewDecoder(DefaultMaxFrame)
	fs := frames(t, 2, frame.DefaultSlotSize)
	n, used, _, _ := d.Decode(stream, fs)
	if n != 2 || stream[used] == 0xC0 || used >= len(stream) {
		t.Fatalf("n %d used %d of %d (next byte %#x)", n, used, len(stream), stream[used])
	}
	n, used2, _, _ := d.Decode(stream[used:], fs)
	if n != 1 || used+used2 != len(stream) || !bytes.Equal(fs[0].Bytes(), want[2]) {
		t.Fatalf("second call: n %d used %d", n, used2)
	}
}

func TestCodecZeroAllocs(t *testing.T) {
	f := ethFrame(1, 1514)
	buf := make([]byte, 0, MaxEncodedLen(len(f)))
	if a := testing.AllocsPerRun(100, func() { buf = AppendFrame(buf[:0], f) }); a != 0 {
		t.Fatalf("AppendFrame: %v allocs", a)
	}
	stream := refEncode(f, f, f)
	d := NewDecoder(DefaultMaxFrame)
	fs := frames(t, 2, frame.DefaultSlotSize)
	a := testing.AllocsPerRun(100, func() {
		// Split inside a frame, so the partial frame is kept and finished.
		for _, b := range [][]byte{stream[:2000], stream[2000:]} {
			for len(b) > 0 {
				_, used, _, _ := d.Decode(b, fs)
				b = b[used:]
			}
		}
	})
	if a != 0 {
		t.Fatalf("Decode: %v allocs", a)
	}
}

// FuzzSLIPDecode feeds a stream to the decoder in chunks of one size, as
// reads would deliver it, into batches of slots of another size, and
// checks frames, drops and the partial state against refDecode.
func FuzzSLIPDecode(f *testing.F) {
	f.Add(refEncode(ethFrame(1, 60)), uint16(0xffff), uint16(2047))
	f.Add(refEncode([]byte{0xC0, 0xDB, 1}, ethFrame(2, 14)), uint16(0), uint16(2047))
	f.Add([]byte{0xC0, 1, 0xDB, 2, 0xC0, 3, 0xC0}, uint16(1), uint16(2047))
	f.Add(refEncode(ethFrame(1, 300), ethFrame(2, 60)), uint16(7), uint16(101))
	f.Fuzz(func(t *testing.T, data []byte, split, slot uint16) {
		chunk := 1 + int(split)
		slotSize := 1 + int(slot)%frame.MaxSlotSize
		maxFrame := DefaultMaxFrame
		if slot&1 == 1 {
			maxFrame = 1 + int(slot)%512 // Options.MaxFrame below the slot
		}
		want := refDecode(data, min(maxFrame, slotSize))

		fs := make([]*frame.Frame, 3)
		frame.NewPool(len(fs), slotSize).Get(fs)
		d := NewDecoder(maxFrame)
		var (
			buf           []byte // received, not used yet
			fed           int
			got           [][]byte
			bad, oversize int
		)
		for {
			n, used, b, o := d.Decode(buf, fs)
			if used < 0 || used > len(buf) || n < 0 || n > len(fs) {
				t.Fatalf("Decode: n %d used %d of %d", n, used, len(buf))
			}
			if used < len(buf) && (n != len(fs) || buf[used] == 0xC0) {
				t.Fatalf("Decode stopped at %d of %d with %d of %d slots filled", used, len(buf), n, len(fs))
			}
			for _, f := range fs[:n] {
				if f.Len() == 0 || f.Len() > min(maxFrame, slotSize) {
					t.Fatalf("frame of %d bytes, limit %d", f.Len(), min(maxFrame, slotSize))
				}
				got = append(got, bytes.Clone(f.Bytes()))
			}
			bad += b
			oversize += o
			buf = buf[used:]
			if len(buf) > 0 {
				continue
			}
			if fed == len(data) {
				break
			}
			m := min(chunk, len(data)-fed)
			buf = append(buf, data[fed:fed+m]...)
			fed += m
		}

		if len(got) != len(want.frames) {
			t.Fatalf("%d frames, want %d", len(got), len(want.frames))
		}
		for i := range got {
			if !bytes.Equal(got[i], want.frames[i]) {
				t.Fatalf("frame %d: % x, want % x", i, got[i], want.frames[i])
			}
		}
		if bad != want.bad || oversize != want.oversize {
			t.Fatalf("bad %d oversize %d, want %d %d", bad, oversize, want.bad, want.oversize)
		}
		if d.Partial() != want.partial {
			t.Fatalf("partial %v, want %v", d.Partial(), want.partial)
		}
		// Whatever came before, a frame after an End comes through: the
		// End ends a packet in progress (a frame, or bad with Esc pending).
		probe := ethFrame(7, min(20, maxFrame, slotSize))
		n, _, _, _ := d.Decode(append([]byte{0xC0}, refEncode(probe)...), fs)
		if n == 0 || !bytes.Equal(fs[n-1].Bytes(), probe) {
			t.Fatalf("no resync: %d frames after an End", n)
		}
	})
}
