package engine

import "github.com/zswitch/zswitch/frame"

// maxBatch bounds every batch the engine moves: what one ReadFrames call
// fills and what one egress queue entry holds.
const maxBatch = 64

// A batch is a run of frame references queued to one egress port. Batches
// are recycled through batchFree: one handoff per batch, not per frame.
type batch struct {
	n  int
	rx int64 // monotonic() when its frames left ReadFrames, for Latency
	fs [maxBatch]*frame.Frame
}

func (b *batch) full() bool { return b.n == maxBatch }

func (b *batch) add(f *frame.Frame) {
	b.fs[b.n] = f
	b.n++
}

// batchPool recycles batches between ingress goroutines (which fill them)
// and egress goroutines (which empty them). The channel's capacity is the
// most idle batches kept; beyond it a batch is left to the GC.
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
		if f.Release() {
			r.free = append(r.free, f)
			if len(r.free) == cap(r.free) {
				r.flush()
			}
		}
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
