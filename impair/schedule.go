package impair

import "github.com/zswitch/zswitch/frame"

// An entry is one frame reference the line holds until due.
type entry struct {
	f   *frame.Frame
	due int64
	seq uint64 // arrival order: breaks ties in due
}

func (e *entry) before(o *entry) bool {
	return e.due < o.due || e.due == o.due && e.seq < o.seq
}

// A schedule holds entries and hands them out by (due, seq). Without
// jitter or reordering, due times only grow, so entries go to a FIFO ring
// at O(1); an entry due before the ring's last one goes to a heap instead.
// Both grow to the most entries ever held and then stay, so steady state
// allocates nothing.
type schedule struct {
	fifo ring
	heap entryHeap
}

func (s *schedule) len() int { return s.fifo.n + len(s.heap) }

func (s *schedule) push(e entry) {
	if s.fifo.n == 0 || !e.before(s.fifo.back()) {
		s.fifo.push(e)
	} else {
		s.heap.push(e)
	}
}

// first returns the next entry out; the schedule must not be empty.
func (s *schedule) first() *entry {
	if s.fifo.n == 0 || len(s.heap) > 0 && s.heap[0].before(s.fifo.front()) {
		return &s.heap[0]
	}
	return s.fifo.front()
}

// pop removes and returns the next entry out; the schedule must not be empty.
func (s *schedule) pop() entry {
	if s.fifo.n == 0 || len(s.heap) > 0 && s.heap[0].before(s.fifo.front()) {
		return s.heap.pop()
	}
	return s.fifo.pop()
}

// A ring is a FIFO of entries in a power-of-two buffer.
type ring struct {
	buf  []entry
	head int
	n    int
}

func (r *ring) front() *entry { return &r.buf[r.head] }
func (r *ring) back() *entry  { return &r.buf[(r.head+r.n-1)&(len(r.buf)-1)] }

func (r *ring) push(e entry) {
	if r.n == len(r.buf) {
		grown := make([]entry, max(16, 2*len(r.buf)))
		for i := range r.n {
			grown[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = e
	r.n++
}

func (r *ring) pop() entry {
	e := r.buf[r.head]
	r.buf[r.head] = entry{}
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return e
}

// An entryHeap is a min-heap of entries by (due, seq).
type entryHeap []entry

func (h *entryHeap) push(e entry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].before(&s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *entryHeap) pop() entry {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = entry{}
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].before(&s[m]) {
			m = l
		}
		if r < len(s) && s[r].before(&s[m]) {
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
