package medium

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
// Each node may impair both its directions (SetImpairment): "in", the
// frames it transmits, once before the fan-out, as a bad radio would; and
// "out", the frames delivered to it, after the link matrix. Each direction
// is an impair.Line, made on first use and kept until the node leaves, so
// its counters last.
//
// "out" runs in the node's egress goroutine, which already waits for due
// times (link latency): frames the link matrix lets through enter the
// line, the line's due frames are written, and the goroutine's timer waits
// for whichever is due first.
//
// "in" cannot run in the ingress goroutine alone: it blocks in
// ReadFrames, so a delayed frame would wait for the node's next
// transmission. A pacer goroutine releases delayed frames at their due
// time and forwards them; SetImpairment starts it, and it stops once the
// line is idle (no impairment, nothing held) or the node leaves. Folding
// the in-delay into every receiver's due time instead would need no
// goroutine, but the rate limit and queue limit need the frames held in
// one place, and every receiver's queue would have to hold the sender's
// delay. The ingress goroutine and the pacer take turns under
// impairment.mu, which also guards the node's forwarder, so a node still
// forwards one batch at a time (detach's forwarding counter stays
// correct). Frames due at once (loss-only impairments, reordered frames)
// go out from the ingress goroutine without waking the pacer.
//
// Counting keeps the identities of ports.Stats: a frame an impairment
// loses counts as link_loss, one over its queue limit as rate_limit, in
// IngressDrops for "in" and EgressDrops for "out"; the extra copies of
// duplicate= count in RxDuplicated and TxDuplicated. Frames a line holds
// when the node leaves count as link_down.

// inImpairment is the "in" direction, with what the pacer needs.
type inImpairment struct {
	impair.Direction
	fw     *forwarder     // the node's forwarding scratch, for the ingress goroutine and the pacer
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

// lineConfig is what the line of a node's direction runs: the seed made
// the link's own, and corruption may flip any byte (no Ethernet header)
// unless corrupt-from says otherwise.
func lineConfig(cfg impair.Config, node, dir string) impair.Config {
	cfg = cfg.ForLink(node, dir)
	if cfg.CorruptFrom == 0 {
		cfg.CorruptFrom = impair.NoHeader
	}
	return cfg
}

// SetImpairment sets a node's link impairments at run time: in for the
// frames it transmits (before the fan-out to the other nodes), out for the
// frames delivered to it (after the link matrix). A zero Config removes
// one. Frames already held keep their due times. CorruptFrom 0 means
// impair.NoHeader here: 802.15.4 frames have no Ethernet header.
func (m *Medium) SetImpairment(node string, in, out impair.Config) error {
	if err := in.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", node, err)
	}
	if err := out.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", node, err)
	}
	// m.mu keeps the node attached throughout, so the pacer started here
	// is one detach waits for.
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.byName[node]
	if !ok {
		return fmt.Errorf("impairment of %s: %w", node, ErrNoNode)
	}
	if err := n.in.Configure(in, lineConfig(in, node, "in")); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", node, err)
	}
	if err := n.out.Configure(out, lineConfig(out, node, "out")); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", node, err)
	}
	res := in.Reservation() + out.Reservation()
	m.pool.Reserve(res - n.reserved)
	n.reserved = res
	m.startPacer(n)
	return nil
}

// Impairment returns a node's impairments as set.
func (m *Medium) Impairment(node string) (in, out impair.Config, err error) {
	n, ok := m.Node(node)
	if !ok {
		return in, out, fmt.Errorf("impairment of %s: %w", node, ErrNoNode)
	}
	in, out = n.Impairment()
	return in, out, nil
}

// Impairment returns the node's impairments as set.
func (n *Node) Impairment() (in, out impair.Config) { return n.in.Config(), n.out.Config() }

// ImpairmentStats are a node's impairment counters per direction; zero for
// a direction never impaired.
type ImpairmentStats struct {
	In, Out impair.Stats
}

// ImpairmentStats returns the node's impairment counters. It is safe to
// call at any time.
func (n *Node) ImpairmentStats() ImpairmentStats {
	return ImpairmentStats{In: n.in.Stats(), Out: n.out.Stats()}
}

// startPacer starts the node's pacer unless it runs or has nothing to do,
// and otherwise kicks it to look at a changed config. The caller holds
// m.mu with n attached.
func (m *Medium) startPacer(n *Node) {
	in := &n.in
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
		n.pacers.Go(func() { m.pace(n) })
	}
}

// admit pushes a batch into a line and hands the references it dropped
// to rel.
func admit(line *impair.Line, fs []*frame.Frame, now int64, rel *releaser) impair.BatchVerdicts {
	v, dropped := line.PushBatch(fs, now)
	rel.release(dropped)
	clear(dropped)
	return v
}

// transmit forwards a batch the node sent, through its "in" line if it has
// one. It runs in the ingress goroutine.
func (m *Medium) transmit(n *Node, fs []*frame.Frame) {
	in := &n.in
	in.Lock()
	defer in.Unlock()
	line := in.Line()
	if line == nil || line.Idle() {
		in.fw.forward(fs)
		return
	}
	now := m.now()
	v := admit(line, fs, now, &in.fw.rel)
	in.fw.rel.flush()
	s := n.stats
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
			in.fw.forward(in.due)
			clear(in.due)
		}
		if len(in.due) < cap(in.due) {
			return
		}
	}
}

// pace forwards the "in" line's delayed frames at their due times. It
// returns when the line is idle or the node detaches (detach flushes what
// the line still holds).
func (m *Medium) pace(n *Node) {
	in := &n.in
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		in.Lock()
		line := in.Line()
		now := m.now()
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
		case <-n.closing:
			return
		}
	}
}

// flushIn drops what the "in" line holds when the node leaves.
func (m *Medium) flushIn(n *Node) {
	in := &n.in
	in.Lock()
	defer in.Unlock()
	if line := in.Line(); line != nil {
		m.flushLine(line, &n.stats.IngressDrops, &in.fw.rel)
	}
}

// flushLine counts everything a line holds as link_down and releases it.
func (m *Medium) flushLine(line *impair.Line, drops *[ports.NumDropReasons]atomic.Uint64, rel *releaser) {
	if line.Len() == 0 {
		return
	}
	held := line.Flush(nil)
	drops[ports.DropLinkDown].Add(uint64(len(held)))
	rel.release(held)
	rel.flush()
}

// passOut sends the frames that reached the node through its "out" line
// and returns in out those due now, and when the line's next frame is due.
// It runs in the egress goroutine; rel must be flushed by the caller.
func (m *Medium) passOut(n *Node, out []*frame.Frame, now int64, rel *releaser) (due []*frame.Frame, next int64, held bool) {
	o := &n.out
	line := o.Line()
	if line == nil {
		return out, 0, false
	}
	o.Lock()
	defer o.Unlock()
	if line.Idle() {
		return out, 0, false
	}
	v := admit(line, out, now, rel)
	s := n.stats
	s.EgressDrops[ports.DropLinkLoss].Add(v.Lost)
	s.EgressDrops[ports.DropRateLimit].Add(v.Overflowed)
	s.TxDuplicated.Add(v.Duplicated)
	out = line.Due(now, out[:0])
	next, held = line.Next()
	return out, next, held
}

// flushOut drops what the "out" line holds when the node leaves.
func (m *Medium) flushOut(n *Node, rel *releaser) {
	o := &n.out
	o.Lock()
	defer o.Unlock()
	if line := o.Line(); line != nil {
		m.flushLine(line, &n.stats.EgressDrops, rel)
	}
}
