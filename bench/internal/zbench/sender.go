package zbench

import (
	"encoding/binary"
	"sync/atomic"
	"time"
)

// sender is a throughput generator: a batch of frames built once in one
// buffer; per batch only seq, timestamp and fill change (and the source
// MAC when it fills a MAC table). A stream gets the whole batch in one
// write, a datagram socket in one sendmmsg, a packet fd one write per
// frame (a TAP takes exactly one frame per write).
type sender struct {
	ep    *endpoint
	size  int
	batch int
	buf   []byte
	slot  int
	slots [][]byte // the frames of buf, for sendmmsg
	// learn > 0: frame seq comes from learnMAC(seq % learn).
	learn uint64
}

func newSender(ep *endpoint, dst [6]byte, flow uint16, size, batch int, learn uint64) *sender {
	slot := ep.framing + size
	s := &sender{ep: ep, size: size, batch: batch, buf: make([]byte, batch*slot), slot: slot, learn: learn}
	for i := range batch {
		b := s.buf[i*slot : (i+1)*slot]
		putLen(b, ep.framing, size)
		writeFrameHeader(b[ep.framing:], ep.mac, dst, flow, kindData)
		s.slots = append(s.slots, b)
	}
	return s
}

// blast sends for dur, or until limit frames (0: no limit) or stop,
// returning how many frames went out. With window > 0 it keeps at most
// window frames in flight (sent minus what the slowest receiver accounted
// for): a forwarding rate without tail drops. When the window stays full
// for stallTimeout the frames in flight are written off (they show as
// loss) so it cannot freeze.
func (s *sender) blast(dur time.Duration, limit uint64, stop *atomic.Bool, window uint64, fc *flowCtl) (sent uint64, err error) {
	t0 := time.Now()
	fill := s.size - hdrLen
	var seq uint64
	batch := uint64(s.batch)
	for !stop.Load() && time.Since(t0) < dur && (limit == 0 || seq < limit) {
		n := batch
		if limit > 0 {
			n = min(batch, limit-seq)
		}
		if window > 0 && !fc.admit(seq+n, window) {
			fc.base.Store(seq) // a stall: write the frames in flight off
		}
		ts := nowNS()
		for i := range n {
			f := s.slots[i][s.ep.framing:]
			binary.BigEndian.PutUint64(f[offSeq:], seq+i)
			binary.BigEndian.PutUint64(f[offTS:], uint64(ts))
			copy(f[hdrLen:], fillTemplates[byte(seq+i)][:fill])
			if s.learn > 0 {
				m := learnMAC((seq + i) % s.learn)
				copy(f[6:12], m[:])
			}
		}
		switch {
		case s.ep.framing > 0:
			if _, err := s.ep.w.Write(s.buf[:int(n)*s.slot]); err != nil {
				return seq, err // a partial write: the receiver counts what arrived
			}
		case s.ep.mw != nil:
			if err := s.ep.mw.send(s.slots[:n]); err != nil {
				return seq, err
			}
		default:
			for i := range n {
				if err := s.ep.write(s.slots[i]); err != nil {
					return seq + i, err
				}
			}
		}
		seq += n
	}
	return seq, nil
}

// flowCtl lets a sender sleep (not spin: the host's 2 CPUs are shared)
// until its receivers have made room in the window.
type flowCtl struct {
	progress []atomic.Uint64 // per receiver: next seq wanted
	base     atomic.Uint64   // sender: frames below it written off
	waiting  atomic.Bool
	wake     chan struct{}
	timer    *time.Timer
}

func newFlowCtl(receivers int) *flowCtl {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &flowCtl{progress: make([]atomic.Uint64, receivers), wake: make(chan struct{}, 1), timer: t}
}

// published is called by receiver i with its progress.
func (f *flowCtl) published(i int, p uint64) {
	f.progress[i].Store(p)
	if f.waiting.Load() {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// done is the slowest receiver's progress.
func (f *flowCtl) done() uint64 {
	m := f.progress[0].Load()
	for i := 1; i < len(f.progress); i++ {
		m = min(m, f.progress[i].Load())
	}
	return m
}

// total is the sum of every receiver's progress.
func (f *flowCtl) total() uint64 {
	var t uint64
	for i := range f.progress {
		t += f.progress[i].Load()
	}
	return t
}

// admit waits until upTo-window frames are accounted for; false after a
// stall of stallTimeout without progress.
func (f *flowCtl) admit(upTo, window uint64) bool {
	room := func() bool { return upTo <= max(f.done(), f.base.Load())+window }
	if room() {
		return true
	}
	f.timer.Reset(stallTimeout)
	defer f.timer.Stop()
	for {
		f.waiting.Store(true)
		if room() {
			f.waiting.Store(false)
			return true
		}
		select {
		case <-f.wake:
			f.waiting.Store(false)
			if room() {
				return true
			}
			f.timer.Reset(stallTimeout) // progress, but not enough yet
		case <-f.timer.C:
			f.waiting.Store(false)
			return room()
		}
	}
}

// stallTimeout: see sender.blast.
const stallTimeout = 20 * time.Millisecond
