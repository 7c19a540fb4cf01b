package engine

import (
	"errors"
	"net"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// egressGather is how many frames the egress goroutine hands to one
// WriteFrames call at most: several queued batches at once under load.
const egressGather = 4 * maxBatch

// egress writes what p's queue brings, with p.WriteFrames under p.wmu; the
// ingress goroutines' direct writes (forwarder.direct) are the only other
// writers, and the only other writers of p's tx counters. It runs until
// Detach closes the queue. Besides the queue it waits for the "out"
// impairment's next due frame, if any. It counts frames out of the queue
// (queued) only once they are written, which direct writes rely on.
func (e *Engine) egress(p *Port) {
	defer close(p.writerDone)
	out := make([]*frame.Frame, 0, egressGather)
	w := egressWriter{e: e, p: p, rel: releaser{pool: e.pool, free: make([]*frame.Frame, 0, egressGather)}}
	ol := outLine{timer: time.NewTimer(time.Hour)}
	ol.timer.Stop()
	for {
		var b *batch
		ok := true
		if ol.armed {
			select {
			case b, ok = <-p.queue:
			case <-ol.timer.C:
				ol.armed = false
			}
		} else {
			b, ok = <-p.queue
		}
		if !ok {
			break
		}
		var taken int64
		if b != nil {
			oldest := b.rx
			out = e.take(out[:0], b)
		gather:
			for len(out)+maxBatch <= cap(out) {
				select {
				case b, ok := <-p.queue:
					if !ok {
						break gather
					}
					oldest = min(oldest, b.rx)
					out = e.take(out, b)
				default:
					break gather
				}
			}
			taken = int64(len(out))
			if taken > 0 { // not only flush marks
				p.latency.observe(time.Duration(monotonic() - oldest))
			}
		}
		switch line := p.out.Line(); {
		case p.detaching.Load():
			p.stats.EgressDrops[ports.DropLinkDown].Add(uint64(len(out)))
			w.rel.releaseNow(out)
			clear(out)
		case line != nil:
			e.sendImpaired(p, line, e.egressVLAN(p, out, &w.rel), &ol, &w)
		default:
			w.write(e.egressVLAN(p, out, &w.rel))
		}
		p.queued.Add(-taken)
		p.roomFreed()
		out = out[:0]
	}
}

// take appends b's frames to out and recycles b.
func (e *Engine) take(out []*frame.Frame, b *batch) []*frame.Frame {
	out = append(out, b.fs[:b.n]...)
	e.batches.put(b)
	return out
}

// An egressWriter writes frames to its port and counts them.
type egressWriter struct {
	e          *Engine
	p          *Port
	rel        releaser
	lastErrLog time.Time
}

// write hands out to the port, counts what it took, and releases every
// reference in out. With nothing to write it finishes what a direct write
// left cut instead (flush).
func (w *egressWriter) write(out []*frame.Frame) {
	p := w.p
	if len(out) == 0 {
		w.flush()
		return
	}
	p.wmu.Lock()
	n, err := p.p.WriteFrames(out)
	w.e.caps.tap(p, out[:max(n, 0)], Outbound) // in the order written: under wmu
	p.wmu.Unlock()
	var bytes uint64
	for _, f := range out[:n] {
		bytes += uint64(f.Len())
	}
	p.stats.TxFrames.Add(uint64(n))
	p.stats.TxBytes.Add(bytes)
	w.failed(err)
	w.rel.releaseNow(out)
	clear(out)
}

// flush finishes a frame a direct write cut (ports.TryWriter.Flush): the
// ingress goroutine queued a flush mark, or frames that egressVLAN then
// dropped, so that the cut frame does not wait for the next one.
func (w *egressWriter) flush() {
	p := w.p
	if p.tw == nil {
		return
	}
	p.wmu.Lock()
	err := p.tw.Flush()
	p.wmu.Unlock()
	w.failed(err)
}

// failed counts and logs (at most every 10 s) a write error.
func (w *egressWriter) failed(err error) {
	if err != nil && !errors.Is(err, net.ErrClosed) {
		w.p.stats.Errors.Add(1)
		if now := time.Now(); now.Sub(w.lastErrLog) > 10*time.Second {
			w.lastErrLog = now
			w.e.log.Warn("write failed", "port", w.p.Name, "err", err)
		}
	}
}

// egressVLAN gives every frame in out the tag p sends it with, dropping
// (and counting) those p's VLANs no longer carry. Frames of the port's
// own kind, the common case, pass untouched.
func (e *Engine) egressVLAN(p *Port, out []*frame.Frame, rel *releaser) []*frame.Frame {
	pol := p.policy.Load()
	kept := out[:0]
	for _, f := range out {
		if pol.member.Has(f.VLAN) && !needsRetag(f, pol) {
			kept = append(kept, f)
			continue
		}
		g, r := e.retag(f, pol, rel)
		if g == nil {
			p.stats.EgressDrops[r].Add(1)
			continue
		}
		kept = append(kept, g)
	}
	clear(out[len(kept):])
	return kept
}
