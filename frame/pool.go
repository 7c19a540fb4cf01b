package frame

import "sync"

// A Pool owns fixed-size frame slots. Slots come from slabs: one allocation
// per growth step, never one per frame. Get and Put move whole batches, so
// the lock is taken once per batch, not per frame.
//
// The pool grows lazily up to its limit (see Reserve), so memory follows the
// backlog actually queued, not the worst case. Get never blocks: when it
// returns fewer frames than asked, the caller waits (a stream port applies
// backpressure) or drops and counts.
//
// A Pool is safe for concurrent use.
type Pool struct {
	slotSize int

	mu    sync.Mutex // guards free, total and limit
	free  []*Frame   // LIFO: the most recently freed slot is the warmest in cache
	total int
	limit int
	avail chan struct{} // signalled (non-blocking) when Put refills an empty pool
}

// growStep is the fewest slots one lazy growth allocates (512 KiB at 2 KiB).
const growStep = 256

// NewPool returns a pool of slots of slotSize bytes with n slots allocated
// now and a limit of n.
func NewPool(n, slotSize int) *Pool {
	p := &Pool{slotSize: slotSize, avail: make(chan struct{}, 1), limit: n}
	p.mu.Lock()
	p.growLocked(n)
	p.mu.Unlock()
	return p
}

// SlotSize is the capacity of every slot in the pool.
func (p *Pool) SlotSize() int { return p.slotSize }

// Reserve raises (or, negative, lowers) the number of slots the pool may
// grow to. Slots already allocated are kept.
func (p *Pool) Reserve(n int) {
	p.mu.Lock()
	p.limit += n
	p.mu.Unlock()
	p.signal()
}

func (p *Pool) growLocked(n int) {
	if n <= 0 {
		return
	}
	slab := make([]byte, n*p.slotSize)
	frames := make([]Frame, n)
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
}

// Get fills dst with free frames, each holding one reference and length 0,
// and returns how many it filled.
func (p *Pool) Get(dst []*Frame) int {
	p.mu.Lock()
	if short := len(dst) - len(p.free); short > 0 && p.total < p.limit {
		p.growLocked(min(p.limit-p.total, max(short, growStep)))
	}
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

// Put returns frames whose last reference was released.
func (p *Pool) Put(fs []*Frame) {
	if len(fs) == 0 {
		return
	}
	p.mu.Lock()
	wasEmpty := len(p.free) == 0
	p.free = append(p.free, fs...) // never reallocates: capacity is total
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

func (p *Pool) signal() {
	select {
	case p.avail <- struct{}{}:
	default:
	}
}

// Stats reports free, allocated and maximum slots.
func (p *Pool) Stats() (free, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free), p.total
}

// Limit is how many slots the pool may grow to.
func (p *Pool) Limit() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}
