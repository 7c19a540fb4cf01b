package engine

import (
	"errors"
	"math"
	"net"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// ingress is the only goroutine that calls p.ReadFrames and the only writer
// of p's rx counters.
func (e *Engine) ingress(p *Port) {
	defer close(p.readerDone)
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
			e.receive(p, fs[:n])
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
	targets []*Port  // one flood's egress ports
	rx      int64    // when the batch being forwarded was read
	rel     releaser

	roomTimer *time.Timer // waitRoom's, made on first use

	stormTAT int64 // storm control: when the bucket is next empty (GCRA), in monotonic ns
}

func newForwarder(e *Engine, p *Port) *forwarder {
	return &forwarder{
		e:    e,
		port: p,
		rel:  releaser{pool: e.pool, free: make([]*frame.Frame, 0, maxBatch)},
	}
}

// ingressCounts are one batch's counters, added to the port's once.
type ingressCounts struct {
	rxBytes, forwarded, flooded, refused, moves uint64
	drops                                       [ports.NumDropReasons]uint64
}

// forward classifies, learns, looks up and queues one batch of received
// frames. It neither blocks nor allocates (except to grow pending when
// ports are added). countRx is false for frames an "in" impairment held:
// they were counted as received when read.
func (fw *forwarder) forward(fs []*frame.Frame, countRx bool) {
	p, e := fw.port, fw.e
	p.forwarding.Add(1) // odd: holding a table snapshot
	t := e.table.Load()
	pol := p.policy.Load()
	if len(fw.pending) < len(t.byID) {
		fw.pending = append(fw.pending, make([]*batch, len(t.byID)-len(fw.pending))...)
	}
	now := e.cfg.Now().UnixMilli()
	fw.rx = monotonic()
	var c ingressCounts
	for _, f := range fs {
		if r, drop := fw.forward1(f, t, pol, now, &c); drop {
			c.drops[r]++
			fw.rel.release1(f)
		}
	}
	for _, id := range fw.touched {
		fw.send(t.byID[id], fw.pending[id])
		fw.pending[id] = nil
	}
	fw.touched = fw.touched[:0]
	p.forwarding.Add(1) // even: done with the snapshot

	fw.rel.flush()
	s := p.stats
	if countRx {
		s.RxFrames.Add(uint64(len(fs)))
		s.RxBytes.Add(c.rxBytes)
	}
	s.Forwarded.Add(c.forwarded)
	if c.flooded > 0 {
		s.Flooded.Add(c.flooded)
	}
	if c.refused > 0 {
		s.LearnRefused.Add(c.refused)
	}
	if c.moves > 0 {
		s.MACMoves.Add(c.moves)
	}
	for r, n := range c.drops {
		if n > 0 {
			s.IngressDrops[r].Add(n)
		}
	}
}

// forward1 handles one frame: queued to its egress ports, or a drop
// reason (the caller releases the frame).
func (fw *forwarder) forward1(f *frame.Frame, t *portTable, pol *policy, now int64, c *ingressCounts) (ports.DropReason, bool) {
	p, e := fw.port, fw.e
	b := f.Bytes()
	c.rxBytes += uint64(len(b))
	f.In = p.ID
	if len(b) < 14 {
		return ports.DropRunt, true
	}
	dst, src := fdb.MAC(b[0:6]), fdb.MAC(b[6:12])
	if src.IsGroup() {
		return ports.DropMulticastSource, true
	}
	vlan, tagged, ok := classify(b, pol)
	if !ok {
		return ports.DropVLAN, true
	}
	f.VLAN, f.Tagged = vlan, tagged
	if dst.IsGroup() && pol.stormInterval > 0 && !fw.stormAllow(pol) {
		return ports.DropStorm, true
	}
	switch r, from := e.fdb.LearnFrom(fdb.Key{MAC: src, VLAN: vlan}, p.ID, now); r {
	case fdb.Refused:
		c.refused++
	case fdb.Moved:
		c.moves++
		e.noteMove(src, vlan, from, p, t)
	case fdb.OverLimit:
		return ports.DropMACLimit, true
	case fdb.Bound:
		return ports.DropMACViolation, true
	case fdb.Damped:
		return ports.DropMoveDamped, true
	}
	if !dst.IsGroup() {
		if id, ok := e.fdb.Lookup(fdb.Key{MAC: dst, VLAN: vlan}); ok {
			q := t.port(id)
			switch {
			case id == p.ID:
				return ports.DropFiltered, true
			case q == nil: // left since: flood
			case pol.isolated && q.policy.Load().isolated:
				return ports.DropIsolated, true
			default:
				fw.enqueue(q, f)
				c.forwarded++
				return 0, false
			}
		}
	}
	// Broadcast, multicast or unknown unicast: every other port of the
	// VLAN, isolated ones excepted when this port is isolated too.
	fw.targets = fw.targets[:0]
	for _, q := range t.list {
		if q == p {
			continue
		}
		qp := q.policy.Load()
		if qp.member.Has(vlan) && !(pol.isolated && qp.isolated) {
			fw.targets = append(fw.targets, q)
		}
	}
	if len(fw.targets) == 0 {
		return ports.DropFiltered, true
	}
	f.Retain(int32(len(fw.targets) - 1))
	for _, q := range fw.targets {
		fw.enqueue(q, f)
	}
	c.forwarded++
	c.flooded++
	return 0, false
}

// stormAllow is storm control's token bucket, as a GCRA: each broadcast or
// multicast frame moves the theoretical arrival time on by one interval,
// and a frame that would put it more than a burst ahead is dropped.
func (fw *forwarder) stormAllow(pol *policy) bool {
	tat := max(fw.stormTAT, fw.rx)
	if tat-fw.rx > pol.stormTolerance {
		return false
	}
	fw.stormTAT = tat + pol.stormInterval
	return true
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

// send hands b to q: written at once from this goroutine when q can take
// it without waiting and has nothing queued (direct), else queued without
// blocking, or dropped whole when q is full.
func (fw *forwarder) send(q *Port, b *batch) {
	q.stats.Enqueued.Add(uint64(b.n))
	if q.tw != nil && q.queued.Load() == 0 {
		if b = fw.direct(q, b); b == nil {
			return
		}
	}
	fw.queue(q, b)
}

// flushMark is the rx time of a batch with no frames that only asks q's
// egress goroutine to finish a frame a direct write cut (egressWriter.flush).
const flushMark = math.MaxInt64

// direct is the fast path of send: one hop with no thread to wake. It
// writes what q takes at once of b, as the egress goroutine would (VLAN
// tags, capture, counters, latency), and returns the batch left to queue:
// b with the frames not written, a flush mark if q holds the rest of a
// frame it cut, or nil.
//
// Per-source order holds: q.queued is 0, so every frame this port queued
// to q before was written (the egress goroutine counts frames out of the
// queue after writing them), and the frames not written here are queued
// before this port's next batch. The port itself holds back a cut frame's
// rest (ports.TryWriter). It never waits: on q's writer lock, on q's "out"
// impairment (then only when its line is empty), or on the endpoint.
func (fw *forwarder) direct(q *Port, b *batch) *batch {
	if q.detaching.Load() || !q.wmu.TryLock() {
		return b
	}
	if line := q.out.Line(); line != nil {
		if !q.out.TryLock() {
			q.wmu.Unlock()
			return b
		}
		idle := line.Idle()
		q.out.Unlock()
		if !idle {
			q.wmu.Unlock()
			return b
		}
	}
	e := fw.e
	fs := e.egressVLAN(q, b.fs[:b.n], &fw.rel)
	n, cut := q.tw.TryWriteFrames(fs)
	e.caps.tap(q, fs[:n], Outbound)
	q.wmu.Unlock()
	if n > 0 {
		var bytes uint64
		for _, f := range fs[:n] {
			bytes += uint64(f.Len())
		}
		q.stats.TxFrames.Add(uint64(n))
		q.stats.TxBytes.Add(bytes)
		q.direct.Add(uint64(n))
		q.latency.observe(time.Duration(monotonic() - b.rx))
		fw.rel.release(fs[:n])
	}
	left := copy(b.fs[:], fs[n:])
	clear(b.fs[left:b.n])
	b.n = left
	switch {
	case left > 0: // the egress goroutine writes them, and a cut frame's rest first
		return b
	case cut:
		b.rx = flushMark
		return b
	}
	e.batches.put(b)
	return nil
}

// queue queues b to q without blocking, or drops it whole when q is full;
// if q has backpressure it waits for room first, up to q's limit.
func (fw *forwarder) queue(q *Port, b *batch) {
	n := int64(b.n)
	var deadline int64
	for {
		if d := q.queued.Add(n); d <= int64(fw.e.cfg.QueueLen) {
			select {
			case q.queue <- b:
				q.noteDepth(d)
				return
			default:
			}
		}
		q.queued.Add(-n)
		if deadline == 0 {
			wait := q.policy.Load().backpressure
			if wait == 0 {
				break
			}
			deadline = monotonic() + wait
		}
		if !fw.waitRoom(q, n, deadline) {
			break
		}
	}
	q.stats.EgressDrops[ports.DropQueueFull].Add(uint64(n))
	fw.rel.release(b.fs[:b.n])
	fw.e.batches.put(b)
}
