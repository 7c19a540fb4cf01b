package medium

import (
	"fmt"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
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
// "in" runs in the ingress goroutine, with a pacer goroutine for delayed
// frames (impair.Inbound), once before the fan-out. Folding the in-delay
// into every receiver's due time instead would need no goroutine, but the
// rate limit and queue limit need the frames held in one place. The
// ingress goroutine and the pacer forward through the node's forwarder
// under the direction's lock, so a node still forwards one batch at a
// time (detach's forwarding counter stays correct).
//
// Counting keeps the identities of ports.Stats: a frame an impairment
// loses counts as link_loss, one over its queue limit as rate_limit, in
// IngressDrops for "in" and EgressDrops for "out"; the extra copies of
// duplicate= count in RxDuplicated and TxDuplicated. Frames a line holds
// when the node leaves count as link_down.

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
	l := impair.Link{In: in, Out: out}
	if err := validateLink(node, l); err != nil {
		return err
	}
	// m.mu keeps the node attached throughout, so the pacer started here
	// is one detach waits for.
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.byName[node]
	if !ok {
		return fmt.Errorf("impairment of %s: %w", node, ErrNoNode)
	}
	return m.impairLocked(n, l)
}

func validateLink(node string, l impair.Link) error {
	if err := l.In.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", node, err)
	}
	if err := l.Out.Validate(); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", node, err)
	}
	return nil
}

// impairLocked applies validated impairments to n with m.mu held.
func (m *Medium) impairLocked(n *Node, l impair.Link) error {
	if err := n.in.Configure(l.In, lineConfig(l.In, n.Name, "in")); err != nil {
		return fmt.Errorf("impairment of %s, in: %w", n.Name, err)
	}
	if err := n.out.Configure(l.Out, lineConfig(l.Out, n.Name, "out")); err != nil {
		return fmt.Errorf("impairment of %s, out: %w", n.Name, err)
	}
	res := l.In.Reservation() + l.Out.Reservation()
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

// ImpairmentStats returns the node's impairment counters. It is safe to
// call at any time.
func (n *Node) ImpairmentStats() impair.LinkStats {
	return impair.LinkStats{In: n.in.Stats(), Out: n.out.Stats()}
}

// startPacer starts or kicks the node's pacer. The caller holds m.mu with
// n attached, so detach waits for the pacer.
func (m *Medium) startPacer(n *Node) {
	n.in.StartPacer(n.pacers.Go, m.now, n.closing)
}

// transmit forwards a batch the node sent, through its "in" line if it has
// one. It runs in the ingress goroutine.
func (m *Medium) transmit(n *Node, fs []*frame.Frame) {
	in := &n.in
	in.Lock()
	defer in.Unlock()
	line := in.Line()
	if line == nil || line.Idle() {
		n.fw.forward(fs)
		return
	}
	in.Receive(line, fs, m.now(), n.stats, n.fw.rel.releaseNow)
}

// flushLines drops what the node's lines hold when it leaves, once its
// goroutines are gone.
func (m *Medium) flushLines(n *Node) {
	n.in.Flush(&n.stats.IngressDrops, n.fw.rel.releaseNow)
	n.out.Flush(&n.stats.EgressDrops, n.fw.rel.releaseNow)
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
	impair.PushOut(line, out, now, n.stats, rel.release)
	out = line.Due(now, out[:0])
	next, held = line.Next()
	return out, next, held
}
