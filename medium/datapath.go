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

// releaseNow releases fs's references and flushes.
func (r *releaser) releaseNow(fs []*frame.Frame) {
	r.release(fs)
	r.flush()
}

func (r *releaser) flush() {
	r.pool.Put(r.free)
	clear(r.free)
	r.free = r.free[:0]
}

// ingress is the only goroutine that calls n.p.ReadFrames and the only
// writer of n's rx counters, apart from what the "in" impairment's pacer
// forwards later (see impairment.go).
func (m *Medium) ingress(n *Node) {
	defer close(n.readerDone)
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
			m.receive(n, fs[:k])
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

// receive counts and captures a batch the node sent, as the node sent it,
// then transmits it. It takes the batch's references.
func (m *Medium) receive(n *Node, fs []*frame.Frame) {
	var rxBytes uint64
	for _, f := range fs {
		rxBytes += uint64(f.Len())
	}
	n.stats.RxFrames.Add(uint64(len(fs)))
	n.stats.RxBytes.Add(rxBytes)
	if c := m.capture.Load(); c != nil {
		c.offer(fs)
	}
	m.recs.tap(n, fs, Inbound)
	m.transmit(n, fs)
}

// A forwarder is a node's scratch space for forwarding, used by one
// goroutine at a time (under the node's "in" lock).
type forwarder struct {
	m    *Medium
	node *Node
	rel  releaser
}

// forward carries frames the node transmits to every other node, and
// takes one reference of each. It neither blocks nor allocates (batches
// are recycled). fs holds at most maxBatch frames.
func (fw *forwarder) forward(fs []*frame.Frame) {
	n, m := fw.node, fw.m
	n.forwarding.Add(1) // odd: holding a table snapshot
	t := m.table.Load()
	self := -1
	for i, q := range t.nodes {
		if q == n {
			self = i
		}
	}
	s := n.stats
	if self < 0 {
		// The node has left (a frame read as its port closed, or one its
		// pacer released): the table no longer holds its links.
		n.forwarding.Add(1)
		s.IngressDrops[ports.DropLinkDown].Add(uint64(len(fs)))
		fw.rel.release(fs)
		fw.rel.flush()
		return
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
		if t.out != nil {
			link = t.out[self][j]
			prob = math.Float64frombits(link.prob.Load())
			due += link.delay.Load()
		}
		var b *batch
		var lost uint64
		for _, f := range fs {
			if link != nil && !link.deliver(prob) {
				lost++
				continue
			}
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

	if others == 0 {
		s.IngressDrops[ports.DropFiltered].Add(uint64(len(fs)))
	} else {
		s.Forwarded.Add(uint64(len(fs)))
	}
	fw.rel.release(fs) // the references the caller handed over
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
// due time, then arrival; then, if the node has an "out" impairment, in
// its line (see impairment.go). It runs until detach closes the queue.
func (m *Medium) egress(n *Node) {
	defer close(n.writerDone)
	out := make([]*frame.Frame, 0, egressGather)
	rel := releaser{pool: m.pool, free: make([]*frame.Frame, 0, egressGather)}
	var (
		delayed  delayHeap
		seq      uint64
		timer    = time.NewTimer(time.Hour)
		lineNext int64 // when the "out" line's next frame is due
		lineHeld bool  // the "out" line holds frames
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
		if len(delayed) == 0 && !lineHeld {
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
		arrived := len(out) // leave the node's queue, into the line or the port
		out, lineNext, lineHeld = m.passOut(n, out, now, &rel)
		if len(out) > 0 {
			m.write(n, out)
			rel.release(out)
			clear(out)
			out = out[:0]
		}
		rel.flush()
		n.queued.Add(-int64(arrived))
		if len(delayed) > 0 || lineHeld {
			wake := int64(math.MaxInt64)
			if len(delayed) > 0 {
				wake = delayed[0].due
			}
			if lineHeld {
				wake = min(wake, lineNext)
			}
			timer.Reset(time.Duration(max(wake-m.now(), 0)))
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
