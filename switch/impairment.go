package engine

import (
	"fmt"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
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
// "in" runs in the ingress goroutine, with a pacer goroutine for delayed
// frames (impair.Inbound); both forward through the port's forwarder,
// under the direction's lock, so the port still forwards one batch at a
// time and graceWait's view of it stays right.
//
// Counting keeps the identities of ports.Stats once the lines are empty:
// a frame an impairment loses counts as link_loss, one over its queue
// limit as rate_limit, in IngressDrops for "in" and EgressDrops for
// "out"; the extra copies of duplicate= count in RxDuplicated and
// TxDuplicated. An "in"-impaired port counts RxFrames and RxBytes when it
// reads a frame, not when the line lets it go. Frames a line holds when
// the port leaves count as link_down.

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

// ImpairmentStats returns the port's impairment counters. It is safe to
// call at any time.
func (p *Port) ImpairmentStats() impair.LinkStats {
	return impair.LinkStats{In: p.in.Stats(), Out: p.out.Stats()}
}

// startPacer starts or kicks the port's pacer. The caller holds e.mu with
// p attached, so detach waits for the pacer.
func (e *Engine) startPacer(p *Port) {
	p.in.StartPacer(p.pacers.Go, monotonic, p.closing)
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
		p.fw.forward(fs, true)
		return
	}
	s := p.stats
	var bytes uint64
	for _, f := range fs {
		bytes += uint64(f.Len())
	}
	s.RxFrames.Add(uint64(len(fs)))
	s.RxBytes.Add(bytes)
	in.Receive(line, fs, monotonic(), s, p.fw.rel.releaseNow)
}

// flushLines drops what the port's lines hold when it leaves, once its
// goroutines are gone.
func (e *Engine) flushLines(p *Port) {
	p.in.Flush(&p.stats.IngressDrops, p.fw.rel.releaseNow)
	p.out.Flush(&p.stats.EgressDrops, p.fw.rel.releaseNow)
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
	impair.PushOut(line, out, now, p.stats, w.rel.releaseNow)
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
