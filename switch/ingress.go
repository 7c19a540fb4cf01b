package engine

import (
	"errors"
	"net"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// ingress is the only goroutine that calls p.ReadFrames and the only writer
// of p's rx counters.
func (e *Engine) ingress(p *Port) {
	defer close(p.readerDone)
	fw := newForwarder(e, p)
	fs := make([]*frame.Frame, min(max(p.p.BatchSize(), 1), maxBatch))
	have := 0 // fs[:have] hold frames lent to ReadFrames
	var err error
	for err == nil {
		if have < len(fs) {
			have += e.pool.Get(fs[have:])
		}
		if have == 0 {
			// Cannot happen while the pool's limit covers every queue; if it
			// does, wait rather than spin, and let the peer back off.
			if have = e.pool.GetWait(fs, p.closing); have == 0 {
				break
			}
		}
		var n int
		n, err = p.p.ReadFrames(fs[:have])
		if n > 0 {
			e.caps.tap(p, fs[:n], Inbound)
			fw.forward(fs[:n])
			copy(fs, fs[n:have])
			clear(fs[have-n : have])
			have -= n
		}
	}
	for _, f := range fs[:have] {
		f.Free()
	}
	if !p.detaching.Load() {
		if !errors.Is(err, net.ErrClosed) {
			e.log.Info("port closed by peer", "port", p.Name, "err", err)
		}
		p.stats.Disconnects.Add(1)
		e.detach(p, true)
	}
}

// A forwarder is one ingress goroutine's scratch space, allocated once.
type forwarder struct {
	e       *Engine
	port    *Port
	pending []*batch // per egress port id: the batch being filled
	touched []uint16 // ids with a pending batch
	rx      int64    // when the batch being forwarded was read
	rel     releaser
}

func newForwarder(e *Engine, p *Port) *forwarder {
	return &forwarder{
		e:    e,
		port: p,
		rel:  releaser{pool: e.pool, free: make([]*frame.Frame, 0, maxBatch)},
	}
}

// forward learns, looks up and queues one batch of received frames. It
// neither blocks nor allocates (except to grow pending when ports are added).
func (fw *forwarder) forward(fs []*frame.Frame) {
	p, e := fw.port, fw.e
	p.forwarding.Add(1) // odd: holding a table snapshot
	t := e.table.Load()
	if len(fw.pending) < len(t.byID) {
		fw.pending = append(fw.pending, make([]*batch, len(t.byID)-len(fw.pending))...)
	}
	// Flood targets: every listed port but this one. A port being detached
	// is no longer listed while its last batch is forwarded.
	others := len(t.list)
	if int(p.ID) < len(t.byID) && t.byID[p.ID] == p { // listed: O(1), not a scan of list
		others--
	}
	now := e.cfg.Now().UnixMilli()
	fw.rx = monotonic()
	var (
		rxBytes, forwarded, flooded, refused uint64
		runts, groupSrc, filtered            uint64
	)
	for _, f := range fs {
		b := f.Bytes()
		rxBytes += uint64(len(b))
		f.In = p.ID
		if len(b) < 14 {
			runts++
			fw.rel.release1(f)
			continue
		}
		dst, src := fdb.MAC(b[0:6]), fdb.MAC(b[6:12])
		if src.IsGroup() {
			groupSrc++
			fw.rel.release1(f)
			continue
		}
		switch e.fdb.Learn(fdb.Key{MAC: src}, p.ID, now) {
		case fdb.Refused:
			refused++
		case fdb.Moved:
			e.noteMove(src, p)
		}
		if !dst.IsGroup() {
			if id, ok := e.fdb.Lookup(fdb.Key{MAC: dst}); ok {
				if id == p.ID {
					filtered++
					fw.rel.release1(f)
					continue
				}
				if int(id) < len(t.byID) && t.byID[id] != nil {
					fw.enqueue(t.byID[id], f)
					forwarded++
					continue
				}
			}
		}
		// Broadcast, multicast or unknown unicast: every port but this one.
		if others == 0 {
			filtered++
			fw.rel.release1(f)
			continue
		}
		f.Retain(int32(others - 1))
		for _, q := range t.list {
			if q != p {
				fw.enqueue(q, f)
			}
		}
		forwarded++
		flooded++
	}
	for _, id := range fw.touched {
		fw.send(t.byID[id], fw.pending[id])
		fw.pending[id] = nil
	}
	fw.touched = fw.touched[:0]
	p.forwarding.Add(1) // even: done with the snapshot

	fw.rel.flush()
	s := p.stats
	s.RxFrames.Add(uint64(len(fs)))
	s.RxBytes.Add(rxBytes)
	s.Forwarded.Add(forwarded)
	if flooded > 0 {
		s.Flooded.Add(flooded)
	}
	if refused > 0 {
		s.LearnRefused.Add(refused)
	}
	if runts > 0 {
		s.IngressDrops[ports.DropRunt].Add(runts)
	}
	if groupSrc > 0 {
		s.IngressDrops[ports.DropMulticastSource].Add(groupSrc)
	}
	if filtered > 0 {
		s.IngressDrops[ports.DropFiltered].Add(filtered)
	}
}

func (fw *forwarder) enqueue(q *Port, f *frame.Frame) {
	b := fw.pending[q.ID]
	if b == nil {
		b = fw.e.batches.get()
		b.rx = fw.rx
		fw.pending[q.ID] = b
		fw.touched = append(fw.touched, q.ID)
	}
	b.add(f)
	if b.full() {
		fw.send(q, b)
		nb := fw.e.batches.get()
		nb.rx = fw.rx
		fw.pending[q.ID] = nb
	}
}

// send queues b to q without blocking, or drops it whole when q is full.
func (fw *forwarder) send(q *Port, b *batch) {
	n := int64(b.n)
	q.stats.Enqueued.Add(uint64(n))
	if d := q.queued.Add(n); d <= int64(fw.e.cfg.QueueLen) {
		select {
		case q.queue <- b:
			q.noteDepth(d)
			return
		default:
		}
	}
	q.queued.Add(-n)
	q.stats.EgressDrops[ports.DropQueueFull].Add(uint64(n))
	fw.rel.release(b.fs[:b.n])
	fw.e.batches.put(b)
}
