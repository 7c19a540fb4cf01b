package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zswitch/zswitch/impair"
)

// TestMetricsImpairment: impaired directions, Ethernet and 802.15.4, get
// their counters and settings; unimpaired ones add no series.
func TestMetricsImpairment(t *testing.T) {
	l := newLab(t)
	lossy := impair.Config{Loss: 0.5, Seed: 3}
	if err := l.e.SetImpairment("b", impair.Config{}, lossy); err != nil {
		t.Fatal(err)
	}
	slow := impair.Config{Delay: 20 * time.Millisecond, Rate: 250_000}
	if err := l.m.SetImpairment("y", impair.Config{}, slow); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for range n {
		l.a.inject(ethFrame(0xff, 1))
	}
	l.x.inject(make([]byte, 20))
	pb, _ := l.e.Port("b")
	waitFor(t, "b's line", func() bool { return pb.ImpairmentStats().Out.In == n })
	waitFor(t, "y's frame", func() bool { return l.y.written.Load() == 1 })

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	st := pb.ImpairmentStats().Out
	if st.Lost == 0 || st.Lost == n {
		t.Fatalf("loss=50%% lost %d of %d", st.Lost, n)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zswitch_port_impairment_frames_total", map[string]string{"port": "b", "direction": "out", "event": "pushed"}, n},
		{"zswitch_port_impairment_frames_total", map[string]string{"port": "b", "direction": "out", "event": "lost"}, float64(st.Lost)},
		{"zswitch_port_impairment_frames_total", map[string]string{"port": "b", "direction": "out", "event": "corrupt_skipped"}, 0},
		{"zswitch_port_drops_total", map[string]string{"port": "b", "direction": "out", "reason": "link_loss"}, float64(st.Lost)},
		{"zswitch_port_impairment_loss_ratio", map[string]string{"port": "b", "direction": "out"}, 0.5},
		{"zswitch_port_impairment_info", map[string]string{"port": "b", "direction": "out", "config": "loss=50% seed=3"}, 1},
		{"zswitch_port_impairment_frames_total", map[string]string{"port": "y", "direction": "out", "event": "pushed"}, 1},
		{"zswitch_port_impairment_delay_seconds", map[string]string{"port": "y", "direction": "out", "segment": "802.15.4/radio"}, 0.02},
		{"zswitch_port_impairment_rate_bits_per_second", map[string]string{"port": "y", "direction": "out"}, 250_000},
		{"zswitch_port_impairment_held_frames", map[string]string{"port": "y", "direction": "out"}, 0},
	}
	for _, c := range checks {
		if got, ok := value(mfs, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Only b's and y's "out" directions are impaired: 7 events each.
	if got, err := testutil.GatherAndCount(reg, "zswitch_port_impairment_frames_total"); err != nil || got != 14 {
		t.Errorf("impairment series: %d, %v; want 14", got, err)
	}
}
