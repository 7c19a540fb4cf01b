package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/zswitch/zswitch/medium"
	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

// lab is an engine with ports a and b and a medium "radio" with nodes x
// and y, all in memory.
type lab struct {
	e          *engine.Engine
	m          *medium.Medium
	a, b, x, y *memPort
	c          prometheus.Collector
}

func newLab(t testing.TB) *lab {
	t.Helper()
	e, err := engine.New(engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := medium.New(medium.Config{})
	l := &lab{e: e, m: m, a: newMemPort(), b: newMemPort(), x: newMemPort(), y: newMemPort()}
	t.Cleanup(func() {
		e.Close()
		m.Close()
	})
	for name, p := range map[string]*memPort{"a": l.a, "b": l.b} {
		if _, err := e.Attach(name, "mem", p); err != nil {
			t.Fatal(err)
		}
	}
	for name, p := range map[string]*memPort{"x": l.x, "y": l.y} {
		if _, err := m.Attach(name, p); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[string]string{"x": "wpan-pipe"}
	l.c = NewCollector(e, map[string]*medium.Medium{"radio": m},
		BuildInfo{Version: "v1.2.3", GoVersion: "go1.26.8"},
		WithNodeKind(func(n string) string { return kinds[n] }))
	return l
}

// traffic sends a broadcast and a runt from a, a unicast reply from b and
// one 802.15.4 frame from x, and waits until every counter has settled.
func (l *lab) traffic(t testing.TB) {
	t.Helper()
	l.a.inject(ethFrame(0xff, 1))
	l.a.inject(make([]byte, 10))
	waitFor(t, "b's broadcast", func() bool { return l.b.written.Load() == 1 })
	l.b.inject(ethFrame(1, 2))
	l.x.inject(make([]byte, 20))
	waitFor(t, "counters", func() bool {
		return l.a.written.Load() == 1 && l.y.written.Load() == 1 &&
			l.a.RxFrames.Load() == 2 && l.b.RxFrames.Load() == 1 && l.x.RxFrames.Load() == 1 &&
			l.a.TxFrames.Load() == 1 && l.b.TxFrames.Load() == 1 && l.y.TxFrames.Load() == 1
	})
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestMetricsCollector(t *testing.T) {
	l := newLab(t)
	l.traffic(t)

	const want = `
# HELP zswitch_port_rx_frames_total Frames received from the port's peer.
# TYPE zswitch_port_rx_frames_total counter
zswitch_port_rx_frames_total{kind="mem",port="a",segment="ethernet"} 2
zswitch_port_rx_frames_total{kind="mem",port="b",segment="ethernet"} 1
zswitch_port_rx_frames_total{kind="wpan",port="y",segment="802.15.4/radio"} 0
zswitch_port_rx_frames_total{kind="wpan-pipe",port="x",segment="802.15.4/radio"} 1
# HELP zswitch_port_rx_bytes_total Bytes received from the port's peer (Ethernet or 802.15.4 frames, no framing).
# TYPE zswitch_port_rx_bytes_total counter
zswitch_port_rx_bytes_total{kind="mem",port="a",segment="ethernet"} 70
zswitch_port_rx_bytes_total{kind="mem",port="b",segment="ethernet"} 60
zswitch_port_rx_bytes_total{kind="wpan",port="y",segment="802.15.4/radio"} 0
zswitch_port_rx_bytes_total{kind="wpan-pipe",port="x",segment="802.15.4/radio"} 20
# HELP zswitch_port_tx_bytes_total Bytes written to the port's peer.
# TYPE zswitch_port_tx_bytes_total counter
zswitch_port_tx_bytes_total{kind="mem",port="a",segment="ethernet"} 60
zswitch_port_tx_bytes_total{kind="mem",port="b",segment="ethernet"} 60
zswitch_port_tx_bytes_total{kind="wpan",port="y",segment="802.15.4/radio"} 20
zswitch_port_tx_bytes_total{kind="wpan-pipe",port="x",segment="802.15.4/radio"} 0
# HELP zswitch_port_flooded_frames_total Received frames sent to every other port (broadcast, multicast, unknown unicast).
# TYPE zswitch_port_flooded_frames_total counter
zswitch_port_flooded_frames_total{kind="mem",port="a",segment="ethernet"} 1
zswitch_port_flooded_frames_total{kind="mem",port="b",segment="ethernet"} 0
zswitch_port_flooded_frames_total{kind="wpan",port="y",segment="802.15.4/radio"} 0
zswitch_port_flooded_frames_total{kind="wpan-pipe",port="x",segment="802.15.4/radio"} 0
# HELP zswitch_port_link_up 1 while the port's peer is connected (or, connectionless, reachable).
# TYPE zswitch_port_link_up gauge
zswitch_port_link_up{kind="mem",port="a",segment="ethernet"} 1
zswitch_port_link_up{kind="mem",port="b",segment="ethernet"} 1
zswitch_port_link_up{kind="wpan",port="y",segment="802.15.4/radio"} 1
zswitch_port_link_up{kind="wpan-pipe",port="x",segment="802.15.4/radio"} 1
# HELP zswitch_fdb_entries Entries in the MAC table, static ones included.
# TYPE zswitch_fdb_entries gauge
zswitch_fdb_entries 2
# HELP zswitch_fdb_learned_total MACs learned.
# TYPE zswitch_fdb_learned_total counter
zswitch_fdb_learned_total 2
# HELP zswitch_build_info Always 1; the labels say which zswitch is running.
# TYPE zswitch_build_info gauge
zswitch_build_info{goversion="go1.26.8",version="v1.2.3"} 1
`
	if err := testutil.CollectAndCompare(l.c, strings.NewReader(want),
		"zswitch_port_rx_frames_total", "zswitch_port_rx_bytes_total", "zswitch_port_tx_bytes_total",
		"zswitch_port_flooded_frames_total", "zswitch_port_link_up",
		"zswitch_fdb_entries", "zswitch_fdb_learned_total", "zswitch_build_info"); err != nil {
		t.Error(err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(l.c)
	// Every drop reason in both directions, for each of the four ports.
	if n, err := testutil.GatherAndCount(reg, "zswitch_port_drops_total"); err != nil || n != 4*2*int(ports.NumDropReasons) {
		t.Errorf("drops series: %d, %v; want %d", n, err, 4*2*int(ports.NumDropReasons))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"zswitch_port_drops_total", map[string]string{"port": "a", "direction": "in", "reason": "runt"}, 1},
		{"zswitch_port_drops_total", map[string]string{"port": "a", "direction": "out", "reason": "runt"}, 0},
		{"zswitch_port_tx_frames_total", map[string]string{"port": "y"}, 1},
		{"zswitch_port_queue_high_water_frames", map[string]string{"port": "b"}, 1},
		{"zswitch_port_queue_frames", map[string]string{"port": "b"}, 0},
		{"zswitch_port_tx_direct_frames_total", map[string]string{"port": "b"}, 0}, // mem ports are no TryWriters
		{"zswitch_fdb_max_entries", nil, 65536},
		{"zswitch_port_config_info", map[string]string{"port": "a", "vlan_mode": "trunk", "pvid": "1", "isolated": "false"}, 1},
		{"zswitch_fdb_security_refused_total", map[string]string{"reason": "mac_limit"}, 0},
		{"zswitch_fdb_flapping_macs", nil, 0},
	}
	for _, c := range checks {
		if got, ok := value(mfs, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if free, ok := value(mfs, "zswitch_pool_free_slots", nil); !ok || free <= 0 {
		t.Errorf("zswitch_pool_free_slots = %v, %v", free, ok)
	}
	if names := len(mfs); names != 32 {
		t.Errorf("%d metric families, want 32", names)
	}

	// A port that leaves disappears.
	if err := l.e.Detach("b"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "zswitch_port_rx_frames_total"); err != nil || n != 3 {
		t.Errorf("after detach: %d rx series, %v; want 3", n, err)
	}
}

// value finds the series of name whose labels include labels.
func value(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

func TestMetricsLint(t *testing.T) {
	l := newLab(t)
	problems, err := testutil.CollectAndLint(l.c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestMetricsScrapeDuringTraffic scrapes while frames flow, for the race
// detector, and checks that counters only grow.
func TestMetricsScrapeDuringTraffic(t *testing.T) {
	l := newLab(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			l.a.inject(ethFrame(2, 1))
			l.b.inject(ethFrame(1, 2))
			if i%64 == 0 {
				l.x.inject(make([]byte, 30))
			}
		}
	}()
	var last float64
	for scraping := true; scraping; {
		select {
		case <-done:
			scraping = false
		default:
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		rx, _ := value(mfs, "zswitch_port_rx_frames_total", map[string]string{"port": "a"})
		if rx < last {
			t.Fatalf("rx went from %v to %v", last, rx)
		}
		last = rx
	}
}

// trafficLoop keeps frames flowing, a runt among them, until stop closes.
func (l *lab) trafficLoop(stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for range 8 {
			l.a.inject(ethFrame(2, 1))
			l.b.inject(ethFrame(1, 2))
		}
		l.a.inject(make([]byte, 10))
		l.x.inject(make([]byte, 20))
	}
}
