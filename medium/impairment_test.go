package medium

import (
	"errors"
	"math"
	"math/bits"
	"slices"
	"testing"
	"time"

	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

func setImpairment(t testing.TB, m *Medium, node string, in, out impair.Config) {
	t.Helper()
	if err := m.SetImpairment(node, in, out); err != nil {
		t.Fatal(err)
	}
}

// settled reports whether every frame n got has been decided: both
// identities hold and no impairment holds a frame.
func settled(n *Node) bool {
	s := n.Stats()
	var in, out uint64
	for r := range ports.NumDropReasons {
		in += s.IngressDrops[r].Load()
		out += s.EgressDrops[r].Load()
	}
	is := n.ImpairmentStats()
	return s.RxFrames.Load()+s.RxDuplicated.Load() == s.Forwarded.Load()+in &&
		s.Enqueued.Load()+s.TxDuplicated.Load() == s.TxFrames.Load()+out &&
		is.In.Held == 0 && is.Out.Held == 0
}

// outLossRun sends frames from a to b, whose "out" impairment loses 10 %,
// and returns the sequence numbers b received.
func outLossRun(t *testing.T, seed uint64, frames int) (got []uint32, nb *Node) {
	m := New(Config{})
	defer m.Close()
	a, b := newMemPort(), newMemPort()
	na := attach(t, m, "a", a)
	nb = attach(t, m, "b", b)
	setImpairment(t, m, "b", impair.Config{}, impair.Config{Loss: 0.10, Seed: seed})
	for k := range frames {
		if k%64 == 0 {
			pace(a, nb) // only the impairment loses
		}
		a.inject(psdu(uint32(k), 12))
	}
	waitFor(t, "all frames decided", func() bool {
		return nb.Stats().Enqueued.Load() == uint64(frames) && settled(nb)
	})
	got, _ = b.received()
	checkIdentities(t, na, nb)
	return got, nb
}

func TestOutLossRepeatsAndMatches(t *testing.T) {
	const frames = 100_000
	got1, nb := outLossRun(t, 42, frames)
	got2, _ := outLossRun(t, 42, frames)
	if !slices.Equal(got1, got2) {
		t.Fatal("the same seed gave another delivery pattern")
	}
	got3, _ := outLossRun(t, 43, 2000)
	if slices.Equal(got1[:len(got3)], got3) {
		t.Fatal("another seed gave the same delivery pattern")
	}
	s := nb.Stats()
	lost := s.EgressDrops[ports.DropLinkLoss].Load()
	if loss := float64(lost) / frames; math.Abs(loss-0.10) > 0.01 {
		t.Errorf("loss %.4f, configured 0.10", loss)
	}
	if int(lost)+len(got1) != frames || !slices.IsSorted(got1) {
		t.Errorf("%d lost + %d received != %d, or out of order", lost, len(got1), frames)
	}
	if is := nb.ImpairmentStats().Out; is.In != frames || is.Lost != lost {
		t.Errorf("impairment counters %+v, node lost %d", is, lost)
	}
	if s.EgressDrops[ports.DropQueueFull].Load() != 0 {
		t.Error("queue_full drops: the pacing failed")
	}
}

// TestInDelayDuplicate: a node's "in" impairment applies once, before the
// fan-out: every receiver sees the same duplicates, after the delay.
func TestInDelayDuplicate(t *testing.T) {
	const frames = 1000
	m := New(Config{QueueLen: 4096})
	defer m.Close()
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	na, nb, nc := attach(t, m, "a", a), attach(t, m, "b", b), attach(t, m, "c", c)
	setImpairment(t, m, "a", impair.Config{Delay: 30 * time.Millisecond, Duplicate: 0.1, Limit: 5000, Seed: 1}, impair.Config{})
	start := time.Now()
	for k := range frames {
		a.inject(psdu(uint32(k), 20))
	}
	dups := func() int64 { return int64(na.Stats().RxDuplicated.Load()) }
	waitFor(t, "delivery", func() bool {
		return settled(na) && b.n.Load() == frames+dups() && c.n.Load() == frames+dups()
	})
	gotB, whenB := b.received()
	gotC, _ := c.received()
	if !slices.Equal(gotB, gotC) || !slices.IsSorted(gotB) {
		t.Fatal("b and c saw different frames, or out of order")
	}
	if d := dups(); d < 60 || d > 140 {
		t.Errorf("%d duplicates of %d frames at 10 %%", d, frames)
	}
	if is := na.ImpairmentStats().In; is.Duplicated != uint64(dups()) || is.In != frames {
		t.Errorf("impairment counters %+v", is)
	}
	if d := whenB[0].Sub(start); d < 30*time.Millisecond {
		t.Errorf("first frame after %v, delay 30ms", d)
	}
	checkIdentities(t, na, nb, nc)

	// Cleared, the pacer goes away and frames pass at once.
	setImpairment(t, m, "a", impair.Config{}, impair.Config{})
	waitFor(t, "pacer stopped", func() bool {
		na.in.Lock()
		defer na.in.Unlock()
		return !na.in.Pacing()
	})
	a.inject(psdu(frames, 20))
	waitFor(t, "undelayed frame", func() bool { return b.n.Load() == frames+dups()+1 })
	checkIdentities(t, na, nb, nc)
}

// TestInRateLimit: a burst into a slow link fills its queue; the rest is
// dropped as rate_limit and counted on both sides of the identity.
func TestInRateLimit(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	a, b := newMemPort(), newMemPort()
	na, nb := attach(t, m, "a", a), attach(t, m, "b", b)
	// 100-byte frames at 80 kbit/s: one per 10 ms.
	setImpairment(t, m, "a", impair.Config{Rate: 80_000, Limit: 10}, impair.Config{})
	for k := range 200 {
		a.inject(psdu(uint32(k), 100))
	}
	waitFor(t, "all decided", func() bool { return na.Stats().RxFrames.Load() == 200 && settled(na) && settled(nb) })
	s := na.Stats()
	over := s.IngressDrops[ports.DropRateLimit].Load()
	if over < 150 || over != na.ImpairmentStats().In.Overflowed || b.n.Load() != int64(200-over) {
		t.Errorf("%d rate_limit drops (impairment says %d), b got %d", over, na.ImpairmentStats().In.Overflowed, b.n.Load())
	}
	checkIdentities(t, na, nb)
}

// TestCorruptOnlyTheImpairedCopy: b's "out" corruption flips one bit of
// what b gets, anywhere in the frame (802.15.4 has no Ethernet header),
// while c, sharing the same frames, gets them intact.
func TestCorruptOnlyTheImpairedCopy(t *testing.T) {
	const frames = 2000
	m := New(Config{QueueLen: 4096})
	defer m.Close()
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	b.keep, c.keep = true, true
	attach(t, m, "a", a)
	nb, nc := attach(t, m, "b", b), attach(t, m, "c", c)
	setImpairment(t, m, "b", impair.Config{}, impair.Config{Corrupt: 1, Seed: 3})
	for k := range frames {
		a.inject(psdu(uint32(k), 20))
	}
	waitFor(t, "delivery", func() bool { return b.n.Load() == frames && c.n.Load() == frames })
	b.mu.Lock()
	c.mu.Lock()
	defer b.mu.Unlock()
	defer c.mu.Unlock()
	inHeader := 0
	for k := range frames {
		want := psdu(uint32(k), 20)
		if !slices.Equal(c.bytes[k], want) {
			t.Fatalf("c's frame %d changed", k)
		}
		flipped := 0
		for i := range want {
			flipped += bits.OnesCount8(b.bytes[k][i] ^ want[i])
			if b.bytes[k][i] != want[i] && i < 14 {
				inHeader++
			}
		}
		if flipped != 1 {
			t.Fatalf("b's frame %d has %d bits flipped", k, flipped)
		}
	}
	if inHeader == 0 {
		t.Error("no bit flipped in the first 14 bytes: corrupt-from should default to 0 on a medium")
	}
	if is := nb.ImpairmentStats().Out; is.Corrupted != frames {
		t.Errorf("impairment counters %+v", is)
	}
	checkIdentities(t, nb, nc)
}

// TestDetachWithHeldFrames: frames an impairment holds when its node
// leaves count as link_down, and every slot returns to the pool.
func TestDetachWithHeldFrames(t *testing.T) {
	m := New(Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	na, nb, nc := attach(t, m, "a", a), attach(t, m, "b", b), attach(t, m, "c", c)
	setImpairment(t, m, "a", impair.Config{Delay: time.Hour}, impair.Config{})
	setImpairment(t, m, "b", impair.Config{}, impair.Config{Delay: time.Hour})
	for k := range 50 {
		a.inject(psdu(uint32(k), 10))
		c.inject(psdu(uint32(1000+k), 10))
	}
	waitFor(t, "held", func() bool {
		return na.ImpairmentStats().In.Held == 50 && nb.ImpairmentStats().Out.Held == 50
	})
	if in, out, err := m.Impairment("b"); err != nil || !in.IsZero() || out.Delay != time.Hour {
		t.Fatalf("Impairment(b) = %v, %v, %v", in, out, err)
	}
	for _, name := range []string{"a", "b"} {
		if err := m.Detach(name); err != nil {
			t.Fatal(err)
		}
	}
	if d := na.Stats().IngressDrops[ports.DropLinkDown].Load(); d != 50 {
		t.Errorf("a: %d link_down, want the 50 it held", d)
	}
	if d := nb.Stats().EgressDrops[ports.DropLinkDown].Load(); d != 50 {
		t.Errorf("b: %d link_down, want the 50 it held", d)
	}
	checkIdentities(t, na, nb, nc)
	m.Close()
	if free, total := m.pool.Stats(); free != total {
		t.Errorf("%d of %d slots still in use", total-free, total)
	}
	if m.pool.Limit() != 0 {
		t.Errorf("pool limit %d after Close, reservations leaked", m.pool.Limit())
	}
}

func TestSetImpairmentErrors(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	attach(t, m, "a", newMemPort())
	if err := m.SetImpairment("zz", impair.Config{}, impair.Config{}); !errors.Is(err, ErrNoNode) {
		t.Errorf("unknown node: %v", err)
	}
	if err := m.SetImpairment("a", impair.Config{Reorder: 0.5}, impair.Config{}); err == nil {
		t.Error("an invalid config was accepted")
	}
	if _, _, err := m.Impairment("zz"); !errors.Is(err, ErrNoNode) {
		t.Errorf("Impairment of an unknown node: %v", err)
	}
}
