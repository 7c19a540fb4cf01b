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

// egress is the only goroutine that calls p.WriteFrames and the only writer
// of p's tx counters. It runs until Detach closes the queue.
func (e *Engine) egress(p *Port) {
	defer close(p.writerDone)
	out := make([]*frame.Frame, 0, egressGather)
	rel := releaser{pool: e.pool, free: make([]*frame.Frame, 0, egressGather)}
	var lastErrLog time.Time
	for b := range p.queue {
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
		if p.detaching.Load() {
			p.stats.EgressDrops[ports.DropLinkDown].Add(uint64(len(out)))
		} else {
			p.latency.observe(time.Duration(monotonic() - oldest))
			n, err := p.p.WriteFrames(out)
			e.caps.tap(p, out[:max(n, 0)], Outbound)
			var bytes uint64
			for _, f := range out[:n] {
				bytes += uint64(f.Len())
			}
			p.stats.TxFrames.Add(uint64(n))
			p.stats.TxBytes.Add(bytes)
			if err != nil && !errors.Is(err, net.ErrClosed) {
				p.stats.Errors.Add(1)
				if now := time.Now(); now.Sub(lastErrLog) > 10*time.Second {
					lastErrLog = now
					e.log.Warn("write failed", "port", p.Name, "err", err)
				}
			}
		}
		p.queued.Add(-int64(len(out)))
		rel.release(out)
		rel.flush()
		clear(out)
	}
}

// take appends b's frames to out and recycles b.
func (e *Engine) take(out []*frame.Frame, b *batch) []*frame.Frame {
	out = append(out, b.fs[:b.n]...)
	e.batches.put(b)
	return out
}
