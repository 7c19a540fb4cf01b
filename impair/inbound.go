package impair

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// An Inbound is the "in" direction of a port's link as a switch runs it:
// a Direction plus the pacer that forwards delayed frames on time.
//
// The port's reader cannot release delayed frames itself: it blocks
// reading, so a delayed frame would wait for the port's next one. A
// pacer goroutine releases them at their due time; StartPacer starts it,
// and it stops once the line is idle (no impairment, nothing held) or the
// port leaves. The reader and the pacer take turns under the Direction's
// lock, which also guards the switch's forward function, so the port
// still forwards one batch at a time. Frames due at once (loss only,
// reordered frames) go out from the reader without waking the pacer.
type Inbound struct {
	Direction
	forward func([]*frame.Frame) // the switch's, called with the lock held
	due     []*frame.Frame       // Line.Due's scratch
	pacing  bool                 // a pacer goroutine runs
	wake    int64                // when the pacer looks next (math.MaxInt64: when kicked)
	kick    chan struct{}        // capacity 1, never closed: wakes the pacer for an earlier due time
}

// Init readies in to forward due frames, up to batch at a time, with
// forward. Call it once, before any other method.
func (in *Inbound) Init(batch int, forward func([]*frame.Frame)) {
	in.forward = forward
	in.due = make([]*frame.Frame, 0, batch)
	in.wake = math.MaxInt64
	in.kick = make(chan struct{}, 1)
}

// Pacing reports whether a pacer runs. Hold the lock.
func (in *Inbound) Pacing() bool { return in.pacing }

// StartPacer starts the pacer with spawn (a WaitGroup's Go) unless it runs
// or has nothing to do, and otherwise kicks it to look at a changed
// config. The pacer runs until the line is idle or closing closes.
func (in *Inbound) StartPacer(spawn func(func()), now func() int64, closing <-chan struct{}) {
	in.Lock()
	defer in.Unlock()
	line := in.Line()
	switch {
	case in.pacing:
		in.poke()
	case line != nil && !line.Idle():
		in.pacing = true
		spawn(func() { in.pace(now, closing) })
	}
}

func (in *Inbound) poke() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// Receive pushes a batch the port read into line (its own, non-idle,
// with the lock held), counts what the line did in s as ingress drops
// (link_loss, rate_limit) and RxDuplicated, hands the dropped references
// to release, forwards what is due now and wakes the pacer for what is
// due later. fs's elements are undefined afterwards.
func (in *Inbound) Receive(line *Line, fs []*frame.Frame, now int64, s *ports.Stats, release func([]*frame.Frame)) {
	v, dropped := line.PushBatch(fs, now)
	release(dropped)
	clear(dropped)
	s.IngressDrops[ports.DropLinkLoss].Add(v.Lost)
	s.IngressDrops[ports.DropRateLimit].Add(v.Overflowed)
	s.RxDuplicated.Add(v.Duplicated)
	in.forwardDue(line, now)
	if next, ok := line.Next(); ok && next < in.wake {
		in.wake = next
		in.poke()
	}
}

// forwardDue forwards the line's frames due at now, a batch at a time.
func (in *Inbound) forwardDue(line *Line, now int64) {
	for {
		in.due = line.Due(now, in.due[:0])
		if len(in.due) > 0 {
			in.forward(in.due)
			clear(in.due)
		}
		if len(in.due) < cap(in.due) {
			return
		}
	}
}

// pace forwards delayed frames at their due times, until the line is
// idle or closing closes (the switch then flushes what the line holds).
func (in *Inbound) pace(now func() int64, closing <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		in.Lock()
		line := in.Line()
		t := now()
		in.forwardDue(line, t)
		next, held := line.Next()
		in.wake = math.MaxInt64
		if line.Idle() {
			in.pacing = false
			in.Unlock()
			return
		}
		if held {
			in.wake = next
			timer.Reset(time.Duration(max(next-t, 0)))
		} else {
			timer.Stop()
		}
		in.Unlock()
		select {
		case <-timer.C:
		case <-in.kick:
		case <-closing:
			return
		}
	}
}

// Flush counts what the direction's line holds as drops[link_down] and
// hands it to release: the port has left. Call it once the reader and the
// pacer are gone.
func (d *Direction) Flush(drops *[ports.NumDropReasons]atomic.Uint64, release func([]*frame.Frame)) {
	d.Lock()
	defer d.Unlock()
	line := d.Line()
	if line == nil || line.Len() == 0 {
		return
	}
	held := line.Flush(nil)
	drops[ports.DropLinkDown].Add(uint64(len(held)))
	release(held)
}

// PushOut pushes a batch bound for the port into line (the "out"
// direction's, with the lock held), counts what the line did in s as
// egress drops (link_loss, rate_limit) and TxDuplicated, and hands the
// dropped references to release. fs's elements are undefined afterwards.
func PushOut(line *Line, fs []*frame.Frame, now int64, s *ports.Stats, release func([]*frame.Frame)) {
	v, dropped := line.PushBatch(fs, now)
	release(dropped)
	clear(dropped)
	s.EgressDrops[ports.DropLinkLoss].Add(v.Lost)
	s.EgressDrops[ports.DropRateLimit].Add(v.Overflowed)
	s.TxDuplicated.Add(v.Duplicated)
}
