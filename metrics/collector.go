// Package metrics exports zswitch's counters to Prometheus. The collector
// reads the datapath's own atomic counters when Prometheus scrapes, so
// forwarding pays nothing for metrics beyond the counter updates it does
// anyway; a port that leaves simply disappears from the next scrape.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/medium"
	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

// SegmentEthernet is the segment label of the Ethernet switch's ports.
// Nodes of an 802.15.4 medium carry SegmentWPAN + "/" + the medium's name.
const (
	SegmentEthernet = "ethernet"
	SegmentWPAN     = "802.15.4"
)

// BuildInfo labels zswitch_build_info.
type BuildInfo struct {
	Version   string // the module version, or "devel"
	GoVersion string // runtime.Version()
}

// An Option adjusts a collector.
type Option func(*collector)

// WithNodeKind sets how the kind label of an 802.15.4 node is found from
// its name (media do not record the spec kind). Without it, or when it
// returns "", nodes have kind "wpan".
func WithNodeKind(kind func(node string) string) Option {
	return func(c *collector) { c.nodeKind = kind }
}

type collector struct {
	e        *engine.Engine
	media    map[string]*medium.Medium
	info     BuildInfo
	nodeKind func(string) string

	rxFrames, rxBytes, txFrames, txBytes *prometheus.Desc
	drops, errors, linkUp                *prometheus.Desc
	connects, disconnects                *prometheus.Desc
	queue, highWater, txDirect           *prometheus.Desc
	flooded, learnRefused                *prometheus.Desc
	latency                              *prometheus.Desc
	macMoves, duplicated, macs           *prometheus.Desc
	portConfig                           *prometheus.Desc
	impairFrames, impairHeld, impairInfo *prometheus.Desc
	impairDelay, impairLoss, impairRate  *prometheus.Desc

	fdbEntries, fdbStatic, fdbMax            *prometheus.Desc
	fdbLearned, fdbMoved, fdbAged, fdbRefuse *prometheus.Desc
	fdbFlapping, fdbSecurity                 *prometheus.Desc
	poolSlots, poolFree, poolMax             *prometheus.Desc
	buildInfo                                *prometheus.Desc
}

// portLabels name every per-port series.
var portLabels = []string{"port", "kind", "segment"}

// NewCollector returns a collector of the engine's ports, FDB and pool and
// of every medium's nodes (media may be nil). It reads counters only while
// Prometheus scrapes.
func NewCollector(e *engine.Engine, media map[string]*medium.Medium, info BuildInfo, opts ...Option) prometheus.Collector {
	port := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc("zswitch_port_"+name, help, append(portLabels[:len(portLabels):len(portLabels)], extra...), nil)
	}
	sw := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("zswitch_"+name, help, labels, nil)
	}
	c := &collector{
		e: e, media: media, info: info,

		rxFrames:     port("rx_frames_total", "Frames received from the port's peer."),
		rxBytes:      port("rx_bytes_total", "Bytes received from the port's peer (Ethernet or 802.15.4 frames, no framing)."),
		txFrames:     port("tx_frames_total", "Frames written to the port's peer."),
		txBytes:      port("tx_bytes_total", "Bytes written to the port's peer."),
		drops:        port("drops_total", "Frames discarded, by direction (in: received, out: on the way to the peer) and reason.", "direction", "reason"),
		errors:       port("errors_total", "I/O errors other than drops (failed dials, resets)."),
		linkUp:       port("link_up", "1 while the port's peer is connected (or, connectionless, reachable)."),
		connects:     port("connects_total", "Times the port's peer connected."),
		disconnects:  port("disconnects_total", "Times the port's peer went away."),
		queue:        port("queue_frames", "Frames waiting in the port's egress queue."),
		highWater:    port("queue_high_water_frames", "The most frames ever waiting in the port's egress queue."),
		txDirect:     port("tx_direct_frames_total", "Of tx_frames_total, the frames the receiving port's goroutine wrote itself because this port's queue was empty and its writer idle (no queue hop)."),
		latency:      port("forward_latency_seconds", "Time from a frame's ingress read to its egress write on this port, queueing included; sampled once per egress write."),
		flooded:      port("flooded_frames_total", "Received frames sent to every other port (broadcast, multicast, unknown unicast)."),
		learnRefused: port("learn_refused_total", "Source MACs not learned: table full or port limit reached."),
		macMoves:     port("mac_moves_total", "Source MACs that moved to this port from another one; a steady rate means two peers share a MAC."),
		duplicated:   port("duplicated_frames_total", "Extra frame copies made by the port's link impairment, by direction.", "direction"),
		macs:         port("macs", "MACs learned on the port (dynamic and sticky)."),
		portConfig:   port("config_info", "Always 1; the labels give the port's VLAN mode (access or trunk), PVID and security flags.", "vlan_mode", "pvid", "isolated", "mac_limit"),
		impairFrames: port("impairment_frames_total", "Frames through the port's link impairment, by direction (in: from the peer, out: to it) and event: pushed (entered), lost, overflowed (over its queue limit), duplicated (extra copies), corrupted, corrupt_skipped (chosen for corruption but delivered intact: no pool slot for a private copy of a shared frame), reordered.", "direction", "event"),
		impairHeld:   port("impairment_held_frames", "Frames the port's link impairment holds now: delayed or waiting for its rate.", "direction"),
		impairInfo:   port("impairment_info", "Always 1 for each impaired direction; config is the impairment in spec keys (delay=50ms jitter=5ms loss=0.01 …).", "direction", "config"),
		impairDelay:  port("impairment_delay_seconds", "The configured delay of the port's link impairment (jitter aside).", "direction"),
		impairLoss:   port("impairment_loss_ratio", "The configured long-run loss of the port's link impairment (loss=, or ge-p/(ge-p+ge-r) with full loss in the bad state).", "direction"),
		impairRate:   port("impairment_rate_bits_per_second", "The configured rate limit of the port's link impairment; 0 is none.", "direction"),

		fdbEntries:  sw("fdb_entries", "Entries in the MAC table, static ones included."),
		fdbStatic:   sw("fdb_static_entries", "Static entries in the MAC table."),
		fdbMax:      sw("fdb_max_entries", "The MAC table's capacity."),
		fdbLearned:  sw("fdb_learned_total", "MACs learned."),
		fdbMoved:    sw("fdb_moved_total", "MACs that moved to another port."),
		fdbAged:     sw("fdb_aged_total", "Entries removed by aging."),
		fdbRefuse:   sw("fdb_refused_total", "MACs not learned but forwarded: table full or the table-wide port limit."),
		fdbFlapping: sw("fdb_flapping_macs", "MACs that moved at least twice within the move window (or are held by damping): two ports claiming one MAC."),
		fdbSecurity: sw("fdb_security_refused_total", "Frames refused by port security in the MAC table, by reason (mac_limit, mac_violation, move_damped).", "reason"),
		poolSlots:   sw("pool_slots", "Frame slots allocated by the switch's pool."),
		poolFree:    sw("pool_free_slots", "Allocated frame slots not in use."),
		poolMax:     sw("pool_max_slots", "The most frame slots the pool may allocate for the attached ports."),
		buildInfo:   sw("build_info", "Always 1; the labels say which zswitch is running.", "version", "goversion"),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.rxFrames, c.rxBytes, c.txFrames, c.txBytes, c.drops, c.errors, c.linkUp,
		c.connects, c.disconnects, c.queue, c.highWater, c.txDirect, c.flooded, c.learnRefused, c.latency,
		c.macMoves, c.duplicated, c.macs, c.portConfig,
		c.impairFrames, c.impairHeld, c.impairInfo, c.impairDelay, c.impairLoss, c.impairRate,
		c.fdbEntries, c.fdbStatic, c.fdbMax, c.fdbLearned, c.fdbMoved, c.fdbAged, c.fdbRefuse,
		c.fdbFlapping, c.fdbSecurity,
		c.poolSlots, c.poolFree, c.poolMax, c.buildInfo,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.e.Ports() {
		depth, hw := p.Queue()
		c.collectPort(ch, p.Stats(), depth, hw, p.Name, p.Kind, SegmentEthernet)
		c.collectLatency(ch, p.Latency(), p.Name, p.Kind, SegmentEthernet)
		c.collectPortConfig(ch, p)
		counter(ch, c.txDirect, p.DirectWrites(), p.Name, p.Kind, SegmentEthernet)
		in, out := p.Impairment()
		st := p.ImpairmentStats()
		c.collectImpairment(ch, "in", in, st.In, p.Name, p.Kind, SegmentEthernet)
		c.collectImpairment(ch, "out", out, st.Out, p.Name, p.Kind, SegmentEthernet)
	}
	for name, m := range c.media {
		seg := SegmentWPAN + "/" + name
		for _, n := range m.Nodes() {
			kind := ""
			if c.nodeKind != nil {
				kind = c.nodeKind(n.Name)
			}
			if kind == "" {
				kind = "wpan"
			}
			depth, hw := n.Queue()
			c.collectPort(ch, n.Stats(), depth, hw, n.Name, kind, seg)
			in, out := n.Impairment()
			st := n.ImpairmentStats()
			c.collectImpairment(ch, "in", in, st.In, n.Name, kind, seg)
			c.collectImpairment(ch, "out", out, st.Out, n.Name, kind, seg)
		}
	}

	f := c.e.FDB().Stats()
	gauge(ch, c.fdbEntries, float64(f.Entries))
	gauge(ch, c.fdbStatic, float64(f.Static))
	gauge(ch, c.fdbMax, float64(f.Capacity))
	counter(ch, c.fdbLearned, f.Learned)
	counter(ch, c.fdbMoved, f.Moved)
	counter(ch, c.fdbAged, f.Aged)
	counter(ch, c.fdbRefuse, f.Refused)
	gauge(ch, c.fdbFlapping, float64(f.Flapping))
	counter(ch, c.fdbSecurity, f.OverLimit, "mac_limit")
	counter(ch, c.fdbSecurity, f.Bound, "mac_violation")
	counter(ch, c.fdbSecurity, f.Damped, "move_damped")

	pool := c.e.Pool()
	free, total := pool.Stats()
	gauge(ch, c.poolSlots, float64(total))
	gauge(ch, c.poolFree, float64(free))
	gauge(ch, c.poolMax, float64(pool.Limit()))

	gauge(ch, c.buildInfo, 1, c.info.Version, c.info.GoVersion)
}

// collectPort emits one port's series. Counters are loaded one by one, so
// a scrape during traffic may see rx of one batch and not yet its tx: each
// series is monotonic, which is all rate() needs.
func (c *collector) collectPort(ch chan<- prometheus.Metric, s *ports.Stats, depth, hw int64, name, kind, seg string) {
	counter(ch, c.rxFrames, s.RxFrames.Load(), name, kind, seg)
	counter(ch, c.rxBytes, s.RxBytes.Load(), name, kind, seg)
	counter(ch, c.txFrames, s.TxFrames.Load(), name, kind, seg)
	counter(ch, c.txBytes, s.TxBytes.Load(), name, kind, seg)
	for r := range ports.NumDropReasons {
		counter(ch, c.drops, s.IngressDrops[r].Load(), name, kind, seg, "in", r.String())
		counter(ch, c.drops, s.EgressDrops[r].Load(), name, kind, seg, "out", r.String())
	}
	counter(ch, c.errors, s.Errors.Load(), name, kind, seg)
	up := 0.0
	if s.LinkUp.Load() {
		up = 1
	}
	gauge(ch, c.linkUp, up, name, kind, seg)
	counter(ch, c.connects, s.Connects.Load(), name, kind, seg)
	counter(ch, c.disconnects, s.Disconnects.Load(), name, kind, seg)
	gauge(ch, c.queue, float64(depth), name, kind, seg)
	gauge(ch, c.highWater, float64(hw), name, kind, seg)
	counter(ch, c.flooded, s.Flooded.Load(), name, kind, seg)
	counter(ch, c.learnRefused, s.LearnRefused.Load(), name, kind, seg)
	counter(ch, c.macMoves, s.MACMoves.Load(), name, kind, seg)
	counter(ch, c.duplicated, s.RxDuplicated.Load(), name, kind, seg, "in")
	counter(ch, c.duplicated, s.TxDuplicated.Load(), name, kind, seg, "out")
}

// collectPortConfig emits an Ethernet port's learned MACs and its VLAN and
// security settings as an info series, for dashboards to join on.
func (c *collector) collectPortConfig(ch chan<- prometheus.Metric, p *engine.Port) {
	gauge(ch, c.macs, float64(c.e.FDB().PortCount(p.ID)), p.Name, p.Kind, SegmentEthernet)
	pc := p.Config()
	mode := "trunk"
	if pc.Access != 0 {
		mode = "access"
	}
	gauge(ch, c.portConfig, 1, p.Name, p.Kind, SegmentEthernet,
		mode, strconv.Itoa(int(pc.PVID())), strconv.FormatBool(pc.Isolated), strconv.Itoa(pc.MACLimit))
}

// collectImpairment emits one direction's impairment series, if that
// direction is or was ever impaired: unimpaired ports add no series.
func (c *collector) collectImpairment(ch chan<- prometheus.Metric, dir string, cfg impair.Config, st impair.Stats, name, kind, seg string) {
	if cfg.IsZero() && st == (impair.Stats{}) {
		return
	}
	for _, e := range []struct {
		event string
		v     uint64
	}{
		{"pushed", st.In}, {"lost", st.Lost}, {"overflowed", st.Overflowed}, {"duplicated", st.Duplicated},
		{"corrupted", st.Corrupted}, {"corrupt_skipped", st.CorruptSkipped}, {"reordered", st.Reordered},
	} {
		counter(ch, c.impairFrames, e.v, name, kind, seg, dir, e.event)
	}
	gauge(ch, c.impairHeld, float64(st.Held), name, kind, seg, dir)
	if cfg.IsZero() {
		return
	}
	gauge(ch, c.impairInfo, 1, name, kind, seg, dir, cfg.String())
	gauge(ch, c.impairDelay, cfg.Delay.Seconds(), name, kind, seg, dir)
	gauge(ch, c.impairLoss, cfg.MeanLoss(), name, kind, seg, dir)
	gauge(ch, c.impairRate, float64(cfg.Rate), name, kind, seg, dir)
}

// collectLatency emits the engine's log2 latency histogram as a
// Prometheus histogram (cumulative buckets, seconds).
func (c *collector) collectLatency(ch chan<- prometheus.Metric, l engine.LatencySnapshot, name, kind, seg string) {
	buckets := make(map[float64]uint64, engine.LatencyBuckets-1)
	var cum uint64
	for i := range engine.LatencyBuckets - 1 { // the last bucket is +Inf
		cum += l.Buckets[i]
		buckets[engine.BucketBound(i).Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(c.latency, l.Count, l.Sum.Seconds(), buckets, name, kind, seg)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}
