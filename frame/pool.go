package frame

import "sync"

// A Pool owns fixed-size frame slots. Slots come from slabs: one allocation
// per Grow, never one per frame. Get and Put move whole batches, so the lock
// is taken once per batch, not per frame.
//
// Get never blocks: when it returns fewer frames than asked, the caller waits
// (a stream port applies backpressure) or drops and counts. The engine grows
// the pool with every port it attaches, so frames sitting in egress queues
// can never exhaust it.
//
// A Pool is safe for concurrent use.
type Pool struct {
	slotSize int

	mu    sync.Mutex // guards free and total
	free  []*Frame   // LIFO: the most recently freed slot is the warmest in cache
	total int
	avail chan struct{} // signalled (non-blocking) when Put refills an empty pool
}

// NewPool returns a pool of slots of slotSize bytes, initially holding n slots.
func NewPool(n, slotSize int) *Pool {
	p := &Pool{slotSize: slotSize, avail: make(chan struct{}, 1)}
	p.Grow(n)
	return p
}

// SlotSize is the capacity of every slot in the pool.
func (p *Pool) SlotSize() int { return p.slotSize }

// Grow adds n slots, allocated as one slab.
func (p *Pool) Grow(n int) {
	if n <= 0 {
		return
	}
	slab := make([]byte, n*p.slotSize)
	frames := make([]Frame, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if cap(p.free)-len(p.free) < n {
		grown := make([]*Frame, len(p.free), p.total+n)
		copy(grown, p.free)
		p.free = grown
	}
	for i := range frames {
		f := &frames[i]
		f.buf = slab[i*p.slotSize : (i+1)*p.slotSize : (i+1)*p.slotSize]
		f.pool = p
		p.free = append(p.free, f)
	}
	p.total += n
	p.signal()
}

// Get fills dst with free frames, each holding one reference and length 0,
// and returns how many it filled.
func (p *Pool) Get(dst []*Frame) int {
	p.mu.Lock()
	n := min(len(dst), len(p.free))
	top := len(p.free) - n
	copy(dst, p.free[top:])
	clear(p.free[top:])
	p.free = p.free[:top]
	p.mu.Unlock()
	for _, f := range dst[:n] {
		f.refs.Store(1)
		f.n = 0
	}
	return n
}

// Put returns frames whose last reference was released.
func (p *Pool) Put(fs []*Frame) {
	if len(fs) == 0 {
		return
	}
	p.mu.Lock()
	wasEmpty := len(p.free) == 0
	p.free = append(p.free, fs...) // never grows: capacity is total
	p.mu.Unlock()
	if wasEmpty {
		p.signal()
	}
}

func (p *Pool) putOne(f *Frame) {
	p.mu.Lock()
	wasEmpty := len(p.free) == 0
	p.free = append(p.free, f)
	p.mu.Unlock()
	if wasEmpty {
		p.signal()
	}
}

// GetWait is Get for a caller that cannot go on without at least one frame:
// it waits until a Put refills an empty pool, or done is closed (then it
// returns 0).
func (p *Pool) GetWait(dst []*Frame, done <-chan struct{}) int {
	for {
		if n := p.Get(dst); n > 0 {
			return n
		}
		select {
		case <-p.avail:
			// Pass the wake-up on: another waiter may be parked too.
			if free, _ := p.Stats(); free > 0 {
				p.signal()
			}
		case <-done:
			return 0
		}
	}
}

func (p *Pool) signal() {
	select {
	case p.avail <- struct{}{}:
	default:
	}
}

// Stats reports free and total slots.
func (p *Pool) Stats() (free, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free), p.total
}
