package engine

import (
	"encoding/binary"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
)

// seqFrame is a frame from src to dst carrying seq after the header.
func seqFrame(dst, src [6]byte, seq uint32) []byte {
	b := ethFrame(dst, src, 64)
	binary.BigEndian.PutUint32(b[14:], seq)
	return b
}

// impairedPair attaches a and b, teaches the engine both MACs and applies
// the impairments; frames from a to b then pass through a's "in" and b's
// "out" lines only.
func impairedPair(t *testing.T, in, out impair.Config) (e *Engine, a, b *memPort, pa, pb *Port) {
	t.Helper()
	e = newEngine(t, Config{})
	a, b = newMemPort(), newMemPort()
	b.out = make(chan []byte, 200_000)
	pa, pb = attach(t, e, "a", a), attach(t, e, "b", b)
	b.inject(ethFrame(mac(1), mac(2), 64))
	expectFrame(t, a, ethFrame(mac(1), mac(2), 64), "a")
	if err := e.SetImpairment("a", in, impair.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetImpairment("b", impair.Config{}, out); err != nil {
		t.Fatal(err)
	}
	return e, a, b, pa, pb
}

// sendSeq sends n numbered frames from a to b, a thousand at a time,
// waiting for each thousand to be written or dropped so no queue
// overflows, and returns the sequence numbers b received, in order.
func sendSeq(t *testing.T, a, b *memPort, pa, pb *Port, n int) []uint32 {
	t.Helper()
	var got []uint32
	settled := func() uint64 {
		s, sb := pa.Stats(), pb.Stats()
		var d uint64
		for r := range ports.NumDropReasons {
			d += s.IngressDrops[r].Load() + sb.EgressDrops[r].Load()
		}
		return sb.TxFrames.Load() + d - s.RxDuplicated.Load() - sb.TxDuplicated.Load()
	}
	base := settled()
	for sent := 0; sent < n; {
		k := min(1000, n-sent)
		for i := range k {
			a.inject(seqFrame(mac(2), mac(1), uint32(sent+i)))
		}
		sent += k
		waitFor(t, func() bool {
			depth, _ := pb.Queue() // counted as sent before it leaves the queue
			return settled()-base == uint64(sent) && depth == 0
		}, "frames settled")
	}
	for len(b.out) > 0 {
		f := <-b.out
		got = append(got, binary.BigEndian.Uint32(f[14:]))
	}
	return got
}

func TestImpairmentLossByCounting(t *testing.T) {
	const n = 100_000
	for _, dir := range []string{"in", "out"} {
		t.Run(dir, func(t *testing.T) {
			cfg := impair.Config{Loss: 0.1, Seed: 42}
			var in, out impair.Config
			if dir == "in" {
				in = cfg
			} else {
				out = cfg
			}
			_, a, b, pa, pb := impairedPair(t, in, out)
			got := sendSeq(t, a, b, pa, pb, n)
			lost := n - len(got)
			t.Logf("lost %d of %d (%.3f %%)", lost, n, 100*float64(lost)/n)
			if rate := float64(lost) / n; rate < 0.09 || rate > 0.11 {
				t.Errorf("lost %d of %d frames (%.2f %%), configured 10 %% ± 1 %%", lost, n, 100*rate)
			}
			if !slices.IsSorted(got) {
				t.Error("loss alone reordered frames")
			}
			counted := pa.Stats().IngressDrops[ports.DropLinkLoss].Load() + pb.Stats().EgressDrops[ports.DropLinkLoss].Load()
			if counted != uint64(lost) {
				t.Errorf("%d frames missing, %d counted as link_loss; drops in %v, out %v", lost, counted, dropMap(&pa.Stats().IngressDrops), dropMap(&pb.Stats().EgressDrops))
			}
			is := pa.ImpairmentStats().In
			if dir == "out" {
				is = pb.ImpairmentStats().Out
			}
			if is.In != n || is.Lost != uint64(lost) {
				t.Errorf("impairment counters %+v, want %d in, %d lost", is, n, lost)
			}
		})
	}
}

// TestImpairmentRepeatsWithSeed runs the same traffic twice through a
// lossy, duplicating, reordering link: the same seed delivers the same
// frames in the same order, another seed does not.
func TestImpairmentRepeatsWithSeed(t *testing.T) {
	const n = 20_000
	run := func(seed uint64) []uint32 {
		cfg := impair.Config{Loss: 0.05, Duplicate: 0.02, Seed: seed}
		_, a, b, pa, pb := impairedPair(t, impair.Config{}, cfg)
		return sendSeq(t, a, b, pa, pb, n)
	}
	first, second, other := run(7), run(7), run(8)
	if !slices.Equal(first, second) {
		t.Fatalf("seed 7 delivered differently twice: %d and %d frames", len(first), len(second))
	}
	if slices.Equal(first, other) {
		t.Fatal("seeds 7 and 8 delivered the same pattern")
	}
	dups := 0
	for i := 1; i < len(first); i++ {
		if first[i] == first[i-1] {
			dups++
		}
	}
	if dups == 0 {
		t.Error("duplicate=2% made no duplicates")
	}
}

func TestImpairmentDelayUsesPacer(t *testing.T) {
	e, a, b, pa, _ := impairedPair(t, impair.Config{Delay: 40 * time.Millisecond}, impair.Config{})
	start := time.Now()
	a.inject(seqFrame(mac(2), mac(1), 1))
	// One frame and no more traffic: only the pacer can release it.
	if _, ok := b.recv(2 * time.Second); !ok {
		t.Fatal("delayed frame never arrived")
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("frame arrived after %v, delay is 40ms", d)
	}
	if s := pa.ImpairmentStats().In; s.In != 1 || s.Held != 0 {
		t.Errorf("in counters %+v", s)
	}
	// Removed, frames pass at once and the pacer stops.
	if err := e.SetImpairment("a", impair.Config{}, impair.Config{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		pa.in.Lock()
		defer pa.in.Unlock()
		return !pa.in.Pacing()
	}, "pacer stopped")
	a.inject(seqFrame(mac(2), mac(1), 2))
	if _, ok := b.recv(2 * time.Second); !ok {
		t.Fatal("frame after removal never arrived")
	}
	if in, out := pa.Impairment(); !in.IsZero() || !out.IsZero() {
		t.Errorf("impairment after removal: in %v, out %v", in, out)
	}
}

func TestImpairmentOutDelayUsesTimer(t *testing.T) {
	_, a, b, _, pb := impairedPair(t, impair.Config{}, impair.Config{Delay: 40 * time.Millisecond, Jitter: 5 * time.Millisecond})
	start := time.Now()
	a.inject(seqFrame(mac(2), mac(1), 1))
	if _, ok := b.recv(2 * time.Second); !ok {
		t.Fatal("delayed frame never arrived")
	}
	if d := time.Since(start); d < 35*time.Millisecond {
		t.Errorf("frame arrived after %v, delay is 40ms ± 5ms", d)
	}
	if s := pb.ImpairmentStats().Out; s.In != 1 || s.Held != 0 {
		t.Errorf("out counters %+v", s)
	}
}

// TestImpairmentLimitAndDetach fills a slow link beyond its queue limit,
// then detaches the port with frames still held: every frame is counted
// once and every buffer comes back.
func TestImpairmentLimitAndDetach(t *testing.T) {
	e, a, b, pa, pb := impairedPair(t,
		impair.Config{Delay: time.Hour, Limit: 100},
		impair.Config{Rate: 8_000, Limit: 50}) // 1 kB/s: a 64-byte frame each 64 ms
	_ = b
	for i := range 500 {
		a.inject(seqFrame(mac(2), mac(1), uint32(i)))
	}
	waitFor(t, func() bool { return pa.Stats().RxFrames.Load() == 500 }, "frames read")
	s := pa.Stats()
	if got := s.IngressDrops[ports.DropRateLimit].Load(); got != 400 {
		t.Errorf("%d frames dropped at the in queue limit of 100, want 400", got)
	}
	if err := e.Detach("a"); err != nil {
		t.Fatal(err)
	}
	if got := s.IngressDrops[ports.DropLinkDown].Load(); got != 100 {
		t.Errorf("%d held frames counted link_down on detach, want 100", got)
	}
	if got, want := s.RxFrames.Load()+s.RxInvalid.Load(), s.Forwarded.Load()+sumDrops(&s.IngressDrops); got != want {
		t.Errorf("a: rx %d ≠ forwarded+drops %d", got, want)
	}

	// b's out line: a second sender floods it past its limit of 50.
	c := newMemPort()
	pc := attach(t, e, "c", c)
	for i := range 300 {
		c.inject(seqFrame(mac(2), mac(3), uint32(i)))
	}
	waitFor(t, func() bool {
		sb := pb.Stats()
		return pc.Stats().Forwarded.Load() == 300 && sb.Enqueued.Load() == sb.TxFrames.Load()+sumDrops(&sb.EgressDrops)+uint64(pb.ImpairmentStats().Out.Held)
	}, "c's frames reach b's line")
	if got := pb.Stats().EgressDrops[ports.DropRateLimit].Load(); got < 200 {
		t.Errorf("only %d frames over b's limit of 50 dropped as rate_limit", got)
	}
	e.Close()
	sb := pb.Stats()
	if got, want := sb.Enqueued.Load()+sb.TxDuplicated.Load(), sb.TxFrames.Load()+sumDrops(&sb.EgressDrops); got != want {
		t.Errorf("b: enqueued %d ≠ tx+drops %d", got, want)
	}
	if sb.EgressDrops[ports.DropLinkDown].Load() == 0 {
		t.Error("b's held frames were not counted link_down at close")
	}
	if free, total := e.Pool().Stats(); free != total {
		t.Fatalf("pool: %d of %d slots free after Close: held frames leaked", free, total)
	}
}

func TestSetImpairmentErrors(t *testing.T) {
	e := newEngine(t, Config{})
	attach(t, e, "a", newMemPort())
	if err := e.SetImpairment("nope", impair.Config{Loss: 0.1}, impair.Config{}); err == nil {
		t.Error("impairing a missing port worked")
	}
	err := e.SetImpairment("a", impair.Config{}, impair.Config{Reorder: 0.1})
	if err == nil {
		t.Fatal("reorder without delay accepted")
	}
	if want := "impairment of a, out: impair: reorder"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %q", err, want)
	}
}

func sumDrops(d *[ports.NumDropReasons]atomic.Uint64) uint64 {
	var n uint64
	for i := range d {
		n += d[i].Load()
	}
	return n
}

func dropMap(d *[ports.NumDropReasons]atomic.Uint64) map[string]uint64 {
	m := map[string]uint64{}
	for r := range d {
		if n := d[r].Load(); n > 0 {
			m[ports.DropReason(r).String()] = n
		}
	}
	return m
}
