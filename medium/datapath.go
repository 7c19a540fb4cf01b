package medium

import (
	"errors"
	"math"
	"net"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A batch is a run of frame references queued to one node, all due at the
// same time: one sender's frames from one read, on one link.
type batch struct {
	n   int
	due int64  // medium clock (Medium.now) when the frames may go out
	seq uint64 // set by the egress goroutine: arrival order, breaks due ties
	fs  [maxBatch]*frame.Frame
}

// batchPool recycles batches between ingress goroutines (which fill them)
// and egress goroutines (which empty them).
type batchPool chan *batch

func (p batchPool) get() *batch {
	select {
	case b := <-p:
		return b
	default:
		return new(batch)
	}
}

func (p batchPool) put(b *batch) {
	clear(b.fs[:b.n])
	b.n = 0
	select {
	case p <- b:
	default:
	}
}

// releaser collects frames whose last reference was dropped and hands them
// back to their pool in batches.
type releaser struct {
	pool *frame.Pool
	free []*frame.Frame
}

func (r *releaser) release(fs []*frame.Frame) {
	for _, f := range fs {
		r.release1(f)
	}
}

func (r *releaser) release1(f *frame.Frame) {
	if f.Release() {
		r.free = append(r.free, f)
		if len(r.free) == cap(r.free) {
			r.flush()
		}
	}
}

func (r *releaser) flush() {
	r.pool.Put(r.free)
	clear(r.free)
	r.free = r.free[:0]
}

// ingress is the only goroutine that calls n.p.ReadFrames and the only
// writer of n's rx counters.
func (m *Medium) ingress(n *Node) {
	defer close(n.readerDone)
	fw := &forwarder{m: m, node: n, rel: releaser{pool: m.pool, free: make([]*frame.Frame, 0, maxBatch)}}
	fs := make([]*frame.Frame, min(max(n.p.BatchSize(), 1), maxBatch))
	have := 0
	var err error
	for err == nil {
		if have < len(fs) {
			have += m.pool.Get(fs[have:])
		}
		if have == 0 {
			if have = m.pool.GetWait(fs, n.closing); have == 0 {
				break
			}
		}
		var k int
		k, err = n.p.ReadFrames(fs[:have])
		if k > 0 {
			fw.forward(fs[:k])
			copy(fs, fs[k:have])
			clear(fs[have-k : have])
			have -= k
		}
	}
	for _, f := range fs[:have] {
		f.Free()
	}
	if !n.detaching.Load() {
		if !errors.Is(err, net.ErrClosed) {
			m.log.Info("node closed by peer", "node", n.Name, "err", err)
		}
		n.stats.Disconnects.Add(1)
		m.detach(n, true)
	}
}

// A forwarder is one ingress goroutine's scratch space.
type forwarder struct {
	m    *Medium
	node *Node
	rel  releaser
	sent [maxBatch]bool // per frame of the batch: reached the air
}

// forward carries one batch of received frames to every other node. It
// neither blocks nor allocates (batches are recycled).
func (fw *forwarder) forward(fs []*frame.Frame) {
	n, m := fw.node, fw.m
	n.forwarding.Add(1) // odd: holding a table snapshot
	t := m.table.Load()
	if c := m.capture.Load(); c != nil {
		c.offer(fs)
	}
	m.recs.tap(n, fs, Inbound)
	self := -1
	for i, q := range t.nodes {
		if q == n {
			self = i
		}
	}
	var rxBytes uint64
	for _, f := range fs {
		rxBytes += uint64(f.Len())
	}
	now := m.now()
	others := 0
	for j, q := range t.nodes {
		if q == n {
			continue
		}
		others++
		var link *linkState
		prob, due := 1.0, now
		if t.out != nil && self >= 0 {
			link = t.out[self][j]
			prob = math.Float64frombits(link.prob.Load())
			due += link.delay.Load()
		}
		var b *batch
		var lost uint64
		for i, f := range fs {
			if link != nil && !link.deliver(prob) {
				lost++
				continue
			}
			fw.sent[i] = true
			if b == nil {
				b = m.batches.get()
				b.due = due
			}
			f.Retain(1)
			b.fs[b.n] = f
			b.n++
		}
		if lost > 0 {
			q.stats.Enqueued.Add(lost)
			q.stats.EgressDrops[ports.DropLinkLoss].Add(lost)
		}
		if b != nil {
			fw.send(q, b)
		}
	}
	n.forwarding.Add(1) // even: done with the snapshot

	s := n.stats
	s.RxFrames.Add(uint64(len(fs)))
	s.RxBytes.Add(rxBytes)
	if others == 0 {
		s.IngressDrops[ports.DropFiltered].Add(uint64(len(fs)))
	} else {
		s.Forwarded.Add(uint64(len(fs)))
	}
	for i, f := range fs {
		fw.sent[i] = false
		fw.rel.release1(f) // the reference ReadFrames's slot held
	}
	fw.rel.flush()
}

// send queues b to q without blocking, or drops it whole when q is full.
func (fw *forwarder) send(q *Node, b *batch) {
	k := int64(b.n)
	q.stats.Enqueued.Add(uint64(k))
	if d := q.queued.Add(k); d <= int64(fw.m.cfg.QueueLen) {
		select {
		case q.queue <- b:
			q.noteDepth(d)
			return
		default:
		}
	}
	q.queued.Add(-k)
	q.stats.EgressDrops[ports.DropQueueFull].Add(uint64(k))
	fw.rel.release(b.fs[:b.n])
	fw.m.batches.put(b)
}

// egress is the only goroutine that calls n.p.WriteFrames and the only
// writer of n's tx counters. Batches due later wait in a heap ordered by
// due time, then arrival. It runs until detach closes the queue.
func (m *Medium) egress(n *Node) {
	defer close(n.writerDone)
	out := make([]*frame.Frame, 0, egressGather)
	rel := releaser{pool: m.pool, free: make([]*frame.Frame, 0, egressGather)}
	var (
		delayed delayHeap
		seq     uint64
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	// add takes b now if nothing waits and it is due, else queues it in
	// the heap, so frames always leave in order of due time.
	add := func(b *batch, now int64) {
		if len(delayed) == 0 && b.due <= now && len(out)+b.n <= cap(out) {
			out = append(out, b.fs[:b.n]...)
			m.batches.put(b)
			return
		}
		seq++
		b.seq = seq
		delayed.push(b)
	}
	for {
		var b *batch
		ok := true
		if len(delayed) == 0 {
			b, ok = <-n.queue
		} else {
			select {
			case b, ok = <-n.queue:
			case <-timer.C:
			}
		}
		if !ok {
			break
		}
		now := m.now()
		if b != nil {
			add(b, now)
		gather:
			for len(out)+maxBatch <= cap(out) {
				select {
				case b, ok := <-n.queue:
					if !ok {
						break gather
					}
					add(b, now)
				default:
					break gather
				}
			}
		}
		for len(delayed) > 0 && delayed[0].due <= now && len(out)+delayed[0].n <= cap(out) {
			b := delayed.pop()
			out = append(out, b.fs[:b.n]...)
			m.batches.put(b)
		}
		if len(out) > 0 {
			m.write(n, out)
			n.queued.Add(-int64(len(out)))
			rel.release(out)
			rel.flush()
			clear(out)
			out = out[:0]
		}
		if len(delayed) > 0 {
			timer.Reset(time.Duration(max(delayed[0].due-m.now(), 0)))
		}
	}
	for _, b := range delayed {
		n.stats.EgressDrops[ports.DropLinkDown].Add(uint64(b.n))
		n.queued.Add(-int64(b.n))
		rel.release(b.fs[:b.n])
	}
	rel.flush()
}

// write hands out to the node's port and counts what it took.
func (m *Medium) write(n *Node, out []*frame.Frame) {
	if n.detaching.Load() {
		n.stats.EgressDrops[ports.DropLinkDown].Add(uint64(len(out)))
		return
	}
	k, err := n.p.WriteFrames(out)
	m.recs.tap(n, out[:k], Outbound)
	var bytes uint64
	for _, f := range out[:k] {
		bytes += uint64(f.Len())
	}
	n.stats.TxFrames.Add(uint64(k))
	n.stats.TxBytes.Add(bytes)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		n.stats.Errors.Add(1)
	}
}

// delayHeap is a min-heap of batches by (due, seq).
type delayHeap []*batch

func (h delayHeap) less(i, j int) bool {
	return h[i].due < h[j].due || h[i].due == h[j].due && h[i].seq < h[j].seq
}

func (h *delayHeap) push(b *batch) {
	*h = append(*h, b)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *delayHeap) pop() *batch {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = nil
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, m) {
			m = l
		}
		if r < len(s) && s.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
