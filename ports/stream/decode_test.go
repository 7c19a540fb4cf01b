package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/zswitch/zswitch/frame"
)

// refResult is what a stream decodes to, according to refDecode.
type refResult struct {
	frames   [][]byte
	oversize int
	consumed int    // bytes a decoder may use: all but an incomplete frame or a bad header
	bad      bool   // the stream stops at an invalid length
	badLen   uint32 // that length
}

// refDecode is the obvious decoder, given the whole stream at once: the
// oracle for decoder.decode fed in pieces.
func refDecode(data []byte, limit int) refResult {
	var r refResult
	i := 0
	for {
		if len(data)-i < hdrLen {
			r.consumed = i
			return r
		}
		l := binary.BigEndian.Uint32(data[i:])
		if l == 0 || l > DefaultMaxFrame {
			r.consumed, r.bad, r.badLen = i, true, l
			return r
		}
		if int(l) > limit {
			r.oversize++
			i += hdrLen + int(l)
			if i >= len(data) {
				r.consumed = len(data)
				return r
			}
			continue
		}
		if len(data)-i-hdrLen < int(l) {
			r.consumed = i
			return r
		}
		r.frames = append(r.frames, data[i+hdrLen:i+hdrLen+int(l)])
		i += hdrLen + int(l)
	}
}

// FuzzStreamDecode feeds a stream to the decoder in chunks of one size, as
// reads would deliver it, into slots of another size, and checks the frames,
// the drops and the bytes used against refDecode.
func FuzzStreamDecode(f *testing.F) {
	f.Add(encode(ethFrame(1, 60)), uint16(0xffff), uint16(2034))
	f.Add(encode(ethFrame(1, 60), ethFrame(2, 14)), uint16(0), uint16(2034))
	f.Add(encode(ethFrame(1, 14), ethFrame(2, 100)), uint16(2), uint16(2034))
	f.Add(append(encode(ethFrame(1, 14)), header(0)...), uint16(5), uint16(2034))
	f.Add(header(0xffffffff), uint16(1), uint16(2034))
	f.Add(encode(ethFrame(1, 3000), ethFrame(2, 60)), uint16(100), uint16(2034))
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
		d := decoder{max: maxFrame}
		var (
			buf      []byte // received, not used yet
			fed      int    // bytes of data received
			consumed int    // bytes the decoder used
			got      [][]byte
			skipped  int
			err      error
		)
		for {
			n, used, k, e := d.decode(buf, fs)
			if used < 0 || used > len(buf) || n < 0 || n > len(fs) {
				t.Fatalf("decode: n %d used %d of %d", n, used, len(buf))
			}
			for _, f := range fs[:n] {
				if f.Len() > min(maxFrame, slotSize) {
					t.Fatalf("frame of %d bytes, over the limit", f.Len())
				}
				got = append(got, bytes.Clone(f.Bytes()))
			}
			skipped += k
			consumed += used
			buf = buf[used:]
			if e != nil {
				err = e
				break
			}
			if n == 0 && k == 0 && used == 0 {
				if fed == len(data) {
					break
				}
				m := min(chunk, len(data)-fed)
				buf = append(buf, data[fed:fed+m]...)
				fed += m
			}
		}

		if len(got) != len(want.frames) {
			t.Fatalf("%d frames, want %d", len(got), len(want.frames))
		}
		for i := range got {
			if !bytes.Equal(got[i], want.frames[i]) {
				t.Fatalf("frame %d: %d bytes, want %d", i, len(got[i]), len(want.frames[i]))
			}
		}
		if skipped != want.oversize {
			t.Fatalf("%d skipped as oversize, want %d", skipped, want.oversize)
		}
		if consumed != want.consumed {
			t.Fatalf("used %d bytes, want %d", consumed, want.consumed)
		}
		if consumed+len(buf) != fed {
			t.Fatalf("used %d + left %d != received %d", consumed, len(buf), fed)
		}
		var le lengthError
		if want.bad != errors.As(err, &le) || (want.bad && uint32(le) != want.badLen) {
			t.Fatalf("error %v, want bad length %v (%d)", err, want.bad, want.badLen)
		}
	})
}
