package engine

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

// Link impairments
//
// Each port may impair both directions of its link (SetImpairment), as
// netem on the link would: "in" on the frames it receives, before they
// are switched; "out" on the frames sent to it, after the switching and
// the VLAN tagging, just before they are written. Each direction is an
// impair.Direction: a line made on first use and kept until the port
// leaves, so its counters last.
//
// "out" runs in the port's egress goroutine: queued frames enter the
// line, its due frames are written, and the goroutine also wakes on a
// timer when the line's next frame is due.
//
// "in" cannot run in the ingress goroutine alone: that one blocks in
// ReadFrames, so a delayed frame would wait for the port's next frame. A
// pacer goroutine forwards delayed frames at their due time; SetImpairment
// starts it, and it stops once the line is idle (no impairment, nothing
// held) or the port leaves. The ingress goroutine and the pacer take turns
// under the direction's lock, which also guards the port's forwarder, so
// the port still forwards one batch at a time and graceWait's view of it
// stays right. Frames due at once (loss-only impairments, reordered
// frames) are forwarded by the ingress goroutine without waking the pacer.
//
// Counting keeps the identities of ports.Stats once the lines are empty:
// a frame an impairment loses counts as link_loss, one over its queue
// limit as rate_limit, in IngressDrops for "in" and EgressDrops for
// "out"; the extra copies of duplicate= count in RxDuplicated and
// TxDuplicated. An "in"-impaired port counts RxFrames and RxBytes when it
// reads a frame, not when the line lets it go. Frames a line holds when
// the port leaves count as link_down.

// inImpairment is the "in" direction, with what the pacer needs.
type inImpairment struct {
	impair.Direction
	fw     *forwarder     // the port's forwarder: the ingress goroutine's and the pacer's, under the lock
	due    []*frame.Frame // Line.Due's scratch, capacity maxBatch
	pacing bool           // a pacer goroutine runs
	wake   int64          // when the pacer looks next (math.MaxInt64: when kicked)
	kick   chan struct{}  // capacity 1, never closed: wakes the pacer for an earlier due time
}

func (in *inImpairment) init(fw *forwarder) {
	in.fw = fw
	in.due = make([]*frame.Frame, 0, maxBatch)
	in.wake = math.MaxInt64
	in.kick = make(chan struct{}, 1)
}

// SetImpairment sets a port's link impairments at run time: in for the
// frames it receives, out for the frames sent to it. A zero Config removes
// one; frames already held keep their due times. Each direction's seed is
// made the port's own (impair.Config.ForLink), so ports given one seed
// draw different streams and a rerun with the same names repeats exactly.
func (e *Engine) SetImpairment(name string, in, out impair.Config) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", name, err)
	}
	if err := out.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", name, err)
	}
	// e.mu keeps the port attached throughout, so the pacer started here
	// is one detach waits for.
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.byName[name]
	if !ok {
		return fmt.Errorf("impairment of %s: no such port", name)
	}
	return e.impairLocked(p, impair.Link{In: in, Out: out})
}

// impairLocked applies validated impairments to p, attached, with e.mu
// held.
func (e *Engine) impairLocked(p *Port, l impair.Link) error {
	if err := p.in.Configure(l.In, l.In.ForLink(p.Name, "in")); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", p.Name, err)
	}
	if err := p.out.Configure(l.Out, l.Out.ForLink(p.Name, "out")); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", p.Name, err)
	}
	res := l.In.Reservation() + l.Out.Reservation()
	e.pool.Reserve(res - p.reserved)
	p.reserved = res
	e.startPacer(p)
	return nil
}

// Impairment returns the port's impairments as set.
func (p *Port) Impairment() (in, out impair.Config) { return p.in.Config(), p.out.Config() }

// ImpairmentStats are a port's impairment counters per direction; zero for
// a direction never impaired.
type ImpairmentStats struct {
	In, Out impair.Stats
}

// ImpairmentStats returns the port's impairment counters. It is safe to
// call at any time.
func (p *Port) ImpairmentStats() ImpairmentStats {
	return ImpairmentStats{In: p.in.Stats(), Out: p.out.Stats()}
}

// startPacer starts the port's pacer unless it runs or has nothing to do,
// and otherwise kicks it to look at a changed config. The caller holds
// e.mu with p attached.
func (e *Engine) startPacer(p *Port) {
	in := &p.in
	in.Lock()
	defer in.Unlock()
	line := in.Line()
	switch {
	case in.pacing:
		select {
		case in.kick <- struct{}{}:
		default:
		}
	case line != nil && !line.Idle():
		in.pacing = true
		p.pacers.Go(func() { e.pace(p) })
	}
}

// receive forwards a batch the port read, through its "in" line if it has
// one. It runs in the ingress goroutine. It leaves fs's elements
// undefined: the references are forwarded, held or released.
func (e *Engine) receive(p *Port, fs []*frame.Frame) {
	in := &p.in
	in.Lock()
	defer in.Unlock()
	line := in.Line()
	if line == nil || line.Idle() {
		in.fw.forward(fs, true)
		return
	}
	s := p.stats
	var bytes uint64
	for _, f := range fs {
		bytes += uint64(f.Len())
	}
	s.RxFrames.Add(uint64(len(fs)))
	s.RxBytes.Add(bytes)
	now := monotonic()
	v, dropped := line.PushBatch(fs, now)
	in.fw.rel.release(dropped)
	in.fw.rel.flush()
	clear(dropped)
	s.IngressDrops[ports.DropLinkLoss].Add(v.Lost)
	s.IngressDrops[ports.DropRateLimit].Add(v.Overflowed)
	s.RxDuplicated.Add(v.Duplicated)
	in.forwardDueLocked(line, now)
	if next, ok := line.Next(); ok && next < in.wake {
		in.wake = next
		select {
		case in.kick <- struct{}{}:
		default:
		}
	}
}

// forwardDueLocked forwards the line's frames due at now, a batch at a time.
func (in *inImpairment) forwardDueLocked(line *impair.Line, now int64) {
	for {
		in.due = line.Due(now, in.due[:0])
		if len(in.due) > 0 {
			in.fw.forward(in.due, false)
			clear(in.due)
		}
		if len(in.due) < cap(in.due) {
			return
		}
	}
}

// pace forwards the "in" line's delayed frames at their due times. It
// returns when the line is idle or the port detaches (detach flushes what
// the line still holds).
func (e *Engine) pace(p *Port) {
	in := &p.in
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		in.Lock()
		line := in.Line()
		now := monotonic()
		in.forwardDueLocked(line, now)
		next, held := line.Next()
		if line.Idle() {
			in.pacing = false
			in.wake = math.MaxInt64
			in.Unlock()
			return
		}
		in.wake = math.MaxInt64
		if held {
			in.wake = next
			timer.Reset(time.Duration(max(next-now, 0)))
		} else {
			timer.Stop()
		}
		in.Unlock()
		select {
		case <-timer.C:
		case <-in.kick:
		case <-p.closing:
			return
		}
	}
}

// flushIn drops what the "in" line holds when the port leaves: after the
// ingress goroutine and the pacer are gone.
func (e *Engine) flushIn(p *Port) {
	in := &p.in
	in.Lock()
	defer in.Unlock()
	if line := in.Line(); line != nil {
		flushLine(line, &p.stats.IngressDrops, &in.fw.rel)
	}
}

// flushLine counts everything a line holds as link_down and releases it.
func flushLine(line *impair.Line, drops *[ports.NumDropReasons]atomic.Uint64, rel *releaser) {
	if line.Len() == 0 {
		return
	}
	held := line.Flush(nil)
	drops[ports.DropLinkDown].Add(uint64(len(held)))
	rel.release(held)
	rel.flush()
}

// An outLine is the egress goroutine's side of the "out" direction.
type outLine struct {
	timer *time.Timer
	armed bool // timer runs for the line's next due frame
}

// sendImpaired writes out (whose references it takes) through the port's
// "out" line, then every frame the line has due, and arms the timer for
// the next one. It runs in the egress goroutine.
func (e *Engine) sendImpaired(p *Port, line *impair.Line, out []*frame.Frame, ol *outLine, w *egressWriter) {
	o := &p.out
	o.Lock()
	defer o.Unlock()
	if line.Idle() {
		w.write(out)
		return
	}
	now := monotonic()
	v, dropped := line.PushBatch(out, now)
	w.rel.release(dropped)
	clear(dropped)
	s := p.stats
	s.EgressDrops[ports.DropLinkLoss].Add(v.Lost)
	s.EgressDrops[ports.DropRateLimit].Add(v.Overflowed)
	s.TxDuplicated.Add(v.Duplicated)
	for {
		due := line.Due(now, out[:0])
		if len(due) > 0 {
			w.write(due)
		}
		if len(due) < cap(out) {
			break
		}
	}
	next, held := line.Next()
	if ol.armed = held; held {
		ol.timer.Reset(time.Duration(max(next-now, 0)))
	}
}

// flushOut drops what the "out" line holds when the port leaves.
func (e *Engine) flushOut(p *Port, rel *releaser) {
	o := &p.out
	o.Lock()
	defer o.Unlock()
	if line := o.Line(); line != nil {
		flushLine(line, &p.stats.EgressDrops, rel)
	}
}
