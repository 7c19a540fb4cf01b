package medium

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zswitch/zswitch/ports"
)

func TestEveryFrameReachesEveryOtherNode(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	ps := []*memPort{newMemPort(), newMemPort(), newMemPort()}
	var nodes []*Node
	for i, p := range ps {
		nodes = append(nodes, attach(t, m, string(rune('a'+i)), p))
	}
	for i, p := range ps {
		for k := range 100 {
			p.inject(psdu(uint32(i*1000+k), 20+k%100))
		}
	}
	waitFor(t, "delivery", func() bool {
		return ps[0].n.Load() == 200 && ps[1].n.Load() == 200 && ps[2].n.Load() == 200
	})
	for i, p := range ps {
		got, _ := p.received()
		for j := range ps {
			var from []uint32
			for _, s := range got {
				if int(s/1000) == j {
					from = append(from, s)
				}
			}
			want := 100
			if j == i {
				want = 0 // a node never hears itself
			}
			if len(from) != want || !slices.IsSorted(from) {
				t.Fatalf("node %d got %d frames from %d (sorted %v), want %d in order", i, len(from), j, slices.IsSorted(from), want)
			}
		}
	}
	checkIdentities(t, nodes...)
	if err := m.Detach("b"); err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes()) != 2 {
		t.Fatalf("%d nodes after Detach", len(m.Nodes()))
	}
}

func TestAloneFiltered(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	p := newMemPort()
	n := attach(t, m, "a", p)
	p.inject(psdu(1, 10))
	waitFor(t, "filtered", func() bool { return n.Stats().IngressDrops[ports.DropFiltered].Load() == 1 })
	checkIdentities(t, n)
}

// TestStuckNode: a node that stops reading fills its own queue and drops
// there; the others get every frame.
func TestStuckNode(t *testing.T) {
	m := New(Config{QueueLen: 128})
	defer m.Close()
	a, b, s := newMemPort(), newMemPort(), newMemPort()
	s.stuck = true
	na, nb, ns := attach(t, m, "a", a), attach(t, m, "b", b), attach(t, m, "stuck", s)
	const frames = 5000
	go func() {
		for k := range frames {
			if k%32 == 0 {
				pace(a, nb) // b must never drop; the stuck node may
			}
			a.inject(psdu(uint32(k), 30))
		}
	}()
	waitFor(t, "b receives all", func() bool { return b.n.Load() == frames })
	got, _ := b.received()
	for i, seq := range got {
		if seq != uint32(i) {
			t.Fatalf("b: frame %d is %d", i, seq)
		}
	}
	if d := ns.Stats().EgressDrops[ports.DropQueueFull].Load(); d == 0 {
		t.Fatal("the stuck node counted no queue_full drops")
	}
	if depth, _ := ns.Queue(); depth > 128 {
		t.Fatalf("stuck node's queue holds %d frames, limit 128", depth)
	}
	waitFor(t, "stuck queue steady", func() bool {
		d, _ := ns.Queue()
		return uint64(d)+ns.Stats().EgressDrops[ports.DropQueueFull].Load() == frames
	})
	m.Detach("stuck") // unblocks its WriteFrames: the rest count as link_down
	checkIdentities(t, na, nb, ns)
}

// pace waits until the sender's input and the receivers' queues hold few
// enough frames that the next 64 cannot overflow a queue.
func pace(sender *memPort, receivers ...*Node) {
	for {
		total := int64(len(sender.in))
		for _, n := range receivers {
			d, _ := n.Queue()
			total += d
		}
		if total < 64 {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// lossRun sends frames from node a to b and c through a lossy matrix and
// returns which sequence numbers reached b and c, and the nodes.
func lossRun(t *testing.T, seed uint64, frames int) (atB, atC []uint32, nb, nc *Node) {
	links := NewLinks()
	links.Set("a", "b", Link{Prob: 0.7})
	links.Set("a", "c", Link{Prob: 0.25})
	m := New(Config{Links: links, Seed: seed})
	defer m.Close()
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	na := attach(t, m, "a", a)
	nb, nc = attach(t, m, "b", b), attach(t, m, "c", c)
	for k := range frames {
		// Pace the sender so no queue ever fills: only the matrix loses.
		if k%64 == 0 {
			pace(a, nb, nc)
		}
		a.inject(psdu(uint32(k), 12))
	}
	done := func(n *Node) bool {
		s := n.Stats()
		return s.Enqueued.Load() == uint64(frames) && s.Enqueued.Load() == s.TxFrames.Load()+s.EgressDrops[ports.DropLinkLoss].Load()
	}
	waitFor(t, "all frames decided", func() bool { return done(nb) && done(nc) })
	atB, _ = b.received()
	atC, _ = c.received()
	checkIdentities(t, na, nb, nc)
	if q := nb.Stats().EgressDrops[ports.DropQueueFull].Load() + nc.Stats().EgressDrops[ports.DropQueueFull].Load(); q != 0 {
		t.Fatalf("%d queue_full drops: the pacing failed", q)
	}
	return atB, atC, nb, nc
}

func TestLossRepeatsAndMatches(t *testing.T) {
	const frames = 100_000
	b1, c1, nb, nc := lossRun(t, 42, frames)
	b2, c2, _, _ := lossRun(t, 42, frames)
	if !slices.Equal(b1, b2) || !slices.Equal(c1, c2) {
		t.Fatal("the same seed gave a different delivery pattern")
	}
	b3, _, _, _ := lossRun(t, 43, 2000)
	if slices.Equal(b1[:len(b3)], b3) {
		t.Fatal("another seed gave the same delivery pattern")
	}
	for _, tc := range []struct {
		n    *Node
		got  []uint32
		prob float64
	}{{nb, b1, 0.7}, {nc, c1, 0.25}} {
		lost := tc.n.Stats().EgressDrops[ports.DropLinkLoss].Load()
		loss := float64(lost) / frames
		if math.Abs(loss-(1-tc.prob)) > 0.01 {
			t.Errorf("%s: loss %.4f, configured %.2f", tc.n.Name, loss, 1-tc.prob)
		}
		if int(lost)+len(tc.got) != frames || !slices.IsSorted(tc.got) {
			t.Errorf("%s: %d lost + %d received != %d, or out of order", tc.n.Name, lost, len(tc.got), frames)
		}
	}
}

func TestLatency(t *testing.T) {
	links := NewLinks()
	links.Set("a", "b", Link{Prob: 1, Delay: 80 * time.Millisecond})
	links.Set("a", "c", Link{Prob: 1, Delay: 40 * time.Millisecond})
	links.Set("c", "b", Link{Prob: 1})
	m := New(Config{Links: links})
	defer m.Close()
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	attach(t, m, "a", a)
	nb, nc := attach(t, m, "b", b), attach(t, m, "c", c)
	start := time.Now()
	for k := range 50 {
		a.inject(psdu(uint32(k), 10))
	}
	time.Sleep(5 * time.Millisecond)
	c.inject(psdu(1000, 10)) // no delay to b: overtakes a's frames
	waitFor(t, "delivery", func() bool { return b.n.Load() == 51 && c.n.Load() == 50 })
	gotB, whenB := b.received()
	if gotB[0] != 1000 {
		t.Fatalf("b: first frame %d, want c's undelayed 1000", gotB[0])
	}
	if !slices.IsSorted(gotB[1:]) {
		t.Fatalf("b: a's frames out of order: %v", gotB)
	}
	if d := whenB[1].Sub(start); d < 80*time.Millisecond {
		t.Fatalf("b: a's first frame after %v, link delay 80ms", d)
	}
	gotC, whenC := c.received()
	if !slices.IsSorted(gotC) || whenC[0].Sub(start) < 40*time.Millisecond {
		t.Fatalf("c: order %v, first after %v (delay 40ms)", slices.IsSorted(gotC), whenC[0].Sub(start))
	}
	checkIdentities(t, nb, nc)
}

func TestReadCSV(t *testing.T) {
	// virtual-hub's own example: three nodes in a line.
	l, err := ReadCSV(strings.NewReader("0,1,0\n1,0,1\n0,1,0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Get("1", "2").Prob != 1 || l.Get("1", "3").Prob != 0 || l.Get("3", "2").Prob != 1 {
		t.Fatalf("parsed %+v", l.pairs)
	}
	l, err = ReadCSV(strings.NewReader("# comment\n0, 0.7/5ms\n\n0.5,1\n"), []string{"x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Get("x", "y"); got != (Link{0.7, 5 * time.Millisecond}) {
		t.Fatalf("x→y %+v", got)
	}
	if got := l.Get("y", "x"); got != (Link{Prob: 0.5}) {
		t.Fatalf("y→x %+v", got)
	}
	if got := l.Get("x", "zzz"); got != Perfect {
		t.Fatalf("unlisted pair %+v, want Perfect", got)
	}
	for _, bad := range []string{"", "1,0\n1\n", "0,2\n1,0\n", "0,x\n1,0\n", "0,1/-3s\n1,0\n"} {
		if _, err := ReadCSV(strings.NewReader(bad), nil); err == nil {
			t.Errorf("ReadCSV(%q) accepted it", bad)
		}
	}
	if _, err := ReadCSV(strings.NewReader("0,1\n1,0\n"), []string{"a"}); err == nil {
		t.Error("ReadCSV accepted 2 rows for 1 name")
	}
}

// TestSetLink cuts a link at run time.
func TestSetLink(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	a, b := newMemPort(), newMemPort()
	attach(t, m, "a", a)
	nb := attach(t, m, "b", b)
	a.inject(psdu(1, 10))
	waitFor(t, "first", func() bool { return b.n.Load() == 1 })
	m.SetLink("a", "b", Link{Prob: 0})
	a.inject(psdu(2, 10))
	waitFor(t, "lost", func() bool { return nb.Stats().EgressDrops[ports.DropLinkLoss].Load() == 1 })
	m.SetLink("a", "b", Perfect)
	a.inject(psdu(3, 10))
	waitFor(t, "third", func() bool { return b.n.Load() == 2 })
	checkIdentities(t, nb)
}
