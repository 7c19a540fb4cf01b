package impair

import (
	"math"
	"testing"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

func TestPushBatchReturnsDropped(t *testing.T) {
	r := newRig(t, Config{Loss: 0.3, Limit: 50, Seed: 1}, 64)
	fs := make([]*frame.Frame, 100)
	for i := range fs {
		fs[i] = r.newFrame()
	}
	v, dropped := r.line.PushBatch(fs, 0)
	if int(v.Lost+v.Overflowed) != len(dropped) || v.Lost == 0 || v.Overflowed == 0 {
		t.Fatalf("verdicts %+v, %d dropped", v, len(dropped))
	}
	for _, f := range fs[len(dropped):] {
		if f != nil {
			t.Fatal("a reference the line holds was left in fs")
		}
	}
	for _, f := range dropped {
		f.Free()
	}
	if held := r.line.Len(); held+len(dropped) != 100 || held != 50 {
		t.Fatalf("line holds %d, %d dropped", held, len(dropped))
	}
	r.due(0, nil)
	if r.inUse() != 0 {
		t.Fatalf("%d slots still in use", r.inUse())
	}
}

func TestForLinkSeeds(t *testing.T) {
	c := Config{Loss: 0.1, Seed: 5}
	a, b := c.ForLink("vm1", "in"), c.ForLink("vm1", "out")
	if a.Seed == b.Seed || a.Seed == c.Seed || a != c.ForLink("vm1", "in") {
		t.Fatalf("seeds %d %d from %d", a.Seed, b.Seed, c.Seed)
	}
	if a.Loss != c.Loss {
		t.Fatal("ForLink changed more than the seed")
	}
}

func TestMeanLoss(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want float64
	}{
		{Config{Loss: 0.02}, 0.02},
		{Config{Loss: 0.1, LossBurst: 4}, 0.1},
		{Config{GEP: 0.01, GER: 0.09}, 0.1},
		{Config{GEP: 0.1, GER: 0.1, GEBad: 0.5, GEGood: 0.1}, 0.3},
	} {
		if got := tc.c.MeanLoss(); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%v: mean loss %v, want %v", tc.c, got, tc.want)
		}
	}
}

// TestDirectionFlush: a port that leaves counts what its line held as
// link_down and gets every reference back.
func TestDirectionFlush(t *testing.T) {
	var d Direction
	cfg := Config{Delay: 1e9}
	if err := d.Configure(cfg, cfg); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, cfg, 64)
	r.line = d.Line()
	for range 10 {
		r.push(0)
	}
	var s ports.Stats
	var released int
	d.Flush(&s.IngressDrops, func(fs []*frame.Frame) {
		released += len(fs)
		for _, f := range fs {
			f.Free()
		}
	})
	if got := s.IngressDrops[ports.DropLinkDown].Load(); got != 10 || released != 10 || r.inUse() != 0 {
		t.Fatalf("link_down %d, released %d, in use %d", got, released, r.inUse())
	}
	if d.Config() != cfg || d.Stats().In != 10 {
		t.Fatalf("config %v, stats %+v", d.Config(), d.Stats())
	}
}
