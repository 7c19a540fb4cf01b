package zbench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// rtt is one request-response run: A pings, B answers, one at a time.
type rtt struct {
	Samples []time.Duration // sorted
	Lost    uint64
}

// runRTT does n ping-pongs of size bytes (or stops after maxDur). samples
// is scratch space, reused across runs.
func runRTT(a, b *endpoint, flow uint16, size, n int, maxDur time.Duration, samples []int64) (rtt, error) {
	// B: the responder turns every ping of this flow into a pong.
	done := make(chan error, 1)
	go func() {
		out := make([]byte, b.framing+size)
		for {
			f, err := b.rd.next()
			if err != nil {
				done <- err
				return
			}
			fl, kind, _, ok := parse(f)
			if !ok || fl != flow || kind != kindPing || len(f) > size {
				continue
			}
			putLen(out, b.framing, len(f))
			o := out[b.framing : b.framing+len(f)]
			copy(o, f)
			copy(o[0:6], a.mac[:])
			copy(o[6:12], b.mac[:])
			binary.BigEndian.PutUint16(o[offKind:], kindPong)
			if err := b.write(out[:b.framing+len(f)]); err != nil {
				done <- err
				return
			}
		}
	}()
	defer func() {
		b.setReadDeadline(time.Unix(1, 0))
		<-done
		b.setReadDeadline(time.Time{})
	}()

	buf := make([]byte, a.framing+size)
	putLen(buf, a.framing, size)
	f := buf[a.framing:]
	writeFrameHeader(f, a.mac, b.mac, flow, kindPing)
	var res rtt
	samples = samples[:0]
	t0 := time.Now()
	for seq := uint64(0); seq < uint64(n) && time.Since(t0) < maxDur; seq++ {
		if aborted.Load() {
			return res, errAborted
		}
		binary.BigEndian.PutUint64(f[offSeq:], seq)
		copy(f[hdrLen:], fillTemplates[byte(seq)][:size-hdrLen])
		a.setReadDeadline(time.Now().Add(250 * time.Millisecond))
		ts := nowNS()
		binary.BigEndian.PutUint64(f[offTS:], uint64(ts))
		if err := a.write(buf); err != nil {
			return res, err
		}
		for {
			g, err := a.rd.next()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				res.Lost++
				break
			}
			if err != nil {
				return res, err
			}
			fl, kind, s, ok := parse(g)
			if !ok || fl != flow || kind != kindPong || s != seq {
				continue
			}
			if len(g) != size || !bytes.Equal(g[hdrLen:], fillTemplates[byte(s)][:size-hdrLen]) {
				return res, fmt.Errorf("pong %d corrupt", s)
			}
			samples = append(samples, nowNS()-int64(binary.BigEndian.Uint64(g[offTS:])))
			break
		}
	}
	a.setReadDeadline(time.Time{})
	slices.Sort(samples)
	res.Samples = make([]time.Duration, len(samples))
	for i, v := range samples {
		res.Samples[i] = time.Duration(v)
	}
	return res, nil
}
