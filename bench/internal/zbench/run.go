// Package zbench is the harness behind bench/cmd/zbench: it starts the
// switches a user could pick (zswitch over stream, datagram and TAP ports,
// the Linux bridge, QEMU's multicast hub, gvproxy, vde_switch) and a
// no-switch baseline, emulates guest endpoints on each, and measures
// frames/s, Gbit/s, loss and request-response round trips, one pair at a
// time, with many pairs, broadcast, idle ports and a full MAC table.
package zbench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// aborted ends Run early (Abort); Run still stops its peers.
var aborted atomic.Bool

var errAborted = errors.New("aborted")

// Abort makes a running Run stop after the current measurement and clean up.
func Abort() { aborted.Store(true) }

// Options of one harness run.
type Options struct {
	Quick      bool          // small counts, zswitch (unix, dgram) + baseline only
	Runs       int           // repetitions of every measurement (default 3)
	Dur        time.Duration // length of one throughput run (default 1s, quick 150ms)
	RTTCount   int           // ping-pongs per latency run (default 20000, quick 500)
	LearnMACs  int           // MACs of the table workload (default 100000, quick 5000)
	Peers      []string      // names (substring match, or exact after "=") to run; empty: all (quick: its own set)
	Workloads  []string      // workload names (substring match) to run; empty: all
	ZswitchBin string        // a zswitch binary to use instead of building ./cmd/zswitch
	Progress   io.Writer     // progress display; nil: none
	Log        *slog.Logger  // lifecycle messages; nil: discard
}

// Sample is one run of one workload on one peer.
type Sample struct {
	FramesPerSec, Gbps, LossPct float64
	Sent, Got                   uint64
	Reorder, Corrupt            uint64
	MallocsPerFrame             float64
	P50, P99, P999              time.Duration
	Learned                     int  // WLearn: MACs in the switch's table before the run (-1: unknown)
	LearnedExact                bool // Learned was counted, not estimated from a sample
	Err                         string
}

// PeerResult holds a peer's samples per workload, or why it did not run.
type PeerResult struct {
	Name, Version, Note, Skipped string
	Samples                      map[string][]Sample
	NA                           map[string]string // workload → why this peer cannot run it
	Diag                         string            // the peer's own counters after the runs
}

// Report is everything the tables and the chart are made of.
type Report struct {
	Date                time.Time
	Machine, Go, Kernel string
	CPUs                int
	Load                string // /proc/loadavg at the start and the end
	Opt                 Options
	Workloads           []string
	Peers               []*PeerResult
	Elapsed             time.Duration
}

func (o *Options) defaults() {
	if o.Runs == 0 {
		o.Runs = 3
	}
	if o.Dur == 0 {
		o.Dur = time.Second
		if o.Quick {
			o.Dur = 150 * time.Millisecond
		}
	}
	if o.RTTCount == 0 {
		o.RTTCount = 20000
		if o.Quick {
			o.RTTCount = 500
		}
	}
	if o.LearnMACs == 0 {
		o.LearnMACs = LearnMACs
		if o.Quick {
			o.LearnMACs = 5000
		}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Run starts every selected peer, measures, stops them and returns the
// report. Peers that cannot start are reported as skipped, with the reason.
func Run(opt Options) (*Report, error) {
	opt.defaults()
	aborted.Store(false)
	start := time.Now()
	ws := workloads(opt.Quick)
	if len(opt.Workloads) > 0 {
		ws = slices.DeleteFunc(ws, func(w workload) bool { return !matches(opt.Workloads, w.name) })
	}
	rep := &Report{Date: start, Opt: opt, Machine: machine(), Go: runtime.Version(), Kernel: kernel(),
		CPUs: runtime.NumCPU(), Load: loadavg()}
	for _, w := range ws {
		rep.Workloads = append(rep.Workloads, w.name)
	}
	dir, err := os.MkdirTemp("", "zbench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if opt.ZswitchBin != "" {
		if _, err := os.Stat(opt.ZswitchBin); err != nil {
			return nil, fmt.Errorf("-zswitch: %w", err)
		}
		zswitchMu.Lock()
		zswitchBin = opt.ZswitchBin
		zswitchMu.Unlock()
	}
	pg := newProgress(opt.Progress)

	type live struct {
		p  *peer
		pr *PeerResult
	}
	var peers []live
	defer func() {
		for _, l := range peers {
			l.p.close()
		}
	}()
	for _, f := range factories {
		if !selected(opt, f) {
			continue
		}
		pr := &PeerResult{Name: f.name, Samples: map[string][]Sample{}, NA: map[string]string{}}
		rep.Peers = append(rep.Peers, pr)
		pg.note("starting %s", f.name)
		p, err := f.start(dir)
		if err == nil {
			err = p.ensure(2)
			if err == nil {
				err = p.announce()
			}
			if err != nil {
				p.close()
			}
		}
		if err != nil {
			pr.Skipped = err.Error()
			pg.note("  skipped: %v", err)
			opt.Log.Warn("peer skipped", "peer", f.name, "err", err)
			continue
		}
		pr.Version, pr.Note = p.Version, p.Note
		for _, w := range ws {
			if why := p.cant[w.name]; why != "" {
				pr.NA[w.name] = why
			}
		}
		if opt.ZswitchBin != "" && strings.HasPrefix(f.name, "zswitch") {
			pr.Version = "zswitch binary " + opt.ZswitchBin
		}
		peers = append(peers, live{p, pr})
	}
	// An untimed warm-up per peer: page faults, socket buffers, learning.
	flowID := uint16(1)
	for _, l := range peers {
		flowID++
		runFlows([]flow{{id: flowID, src: l.p.eps[0], dst: l.p.eps[1].mac, rcv: l.p.eps[1:2]}}, 64, 50*time.Millisecond, 0, 0)
	}

	total := 0
	for _, w := range ws {
		for _, l := range peers {
			if l.pr.NA[w.name] == "" {
				total += opt.Runs
			}
		}
	}
	pg.start(total)
	samples := make([]int64, 0, opt.RTTCount)
	for run := range opt.Runs {
		for _, w := range ws {
			for _, l := range peers {
				if l.pr.NA[w.name] != "" {
					continue
				}
				if aborted.Load() {
					return nil, errAborted
				}
				pg.begin(l.pr.Name, w.name, run+1, opt.Runs)
				s := measure(l.p, w, &flowID, opt, samples)
				l.pr.Samples[w.name] = append(l.pr.Samples[w.name], s)
				pg.end(s.short(w.name))
				if s.Err != "" {
					opt.Log.Warn("measurement failed", "peer", l.pr.Name, "workload", w.name, "err", s.Err)
				}
			}
		}
	}
	pg.finish()
	for _, l := range peers {
		l.p.setIdle(0)
		l.p.trim(2)
		if l.p.diag != nil {
			l.pr.Diag = l.p.diag()
			pg.note("%s counters after the runs:\n%s", l.pr.Name, l.pr.Diag)
		}
	}
	rep.Load += " → " + loadavg()
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func selected(opt Options, f peerFactory) bool {
	if len(opt.Peers) > 0 {
		return matches(opt.Peers, f.name)
	}
	return f.quick || !opt.Quick
}

// matches reports whether name contains one of pats, ignoring case, or
// equals one written "=NAME".
func matches(pats []string, name string) bool {
	for _, n := range pats {
		if exact, ok := strings.CutPrefix(n, "="); ok {
			if strings.EqualFold(name, exact) {
				return true
			}
		} else if strings.Contains(strings.ToLower(name), strings.ToLower(n)) {
			return true
		}
	}
	return false
}

// measure sets the peer up for w (endpoints, idle ports, a full table),
// runs it once and returns the sample.
func measure(p *peer, w workload, flowID *uint16, opt Options, samples []int64) Sample {
	s := Sample{Learned: -1}
	fail := func(err error) Sample { s.Err = err.Error(); return s }
	if err := p.setIdle(w.idle); err != nil {
		return fail(err)
	}
	p.trim(w.eps)
	if err := p.ensure(w.eps); err != nil {
		return fail(err)
	}
	if err := p.announce(); err != nil {
		return fail(err)
	}
	next := func() uint16 { *flowID++; return *flowID }
	eps := p.eps
	if w.learn {
		// Endpoint 2 sends from LearnMACs distinct source MACs to
		// endpoint 0, windowed so none is lost, then the pair runs.
		lf := flow{id: next(), src: eps[2], dst: eps[0].mac, rcv: eps[:1], learn: uint64(opt.LearnMACs)}
		t, err := runFlows([]flow{lf}, 64, time.Hour, uint64(opt.LearnMACs), Window)
		if err != nil {
			return fail(fmt.Errorf("filling the MAC table: %w", err))
		}
		if t.Lost > 0 {
			opt.Log.Info("table fill lost frames", "lost", t.Lost)
		}
		if p.fdbSize != nil {
			n, exact, err := p.fdbSize(opt.LearnMACs)
			if err != nil {
				return fail(err)
			}
			s.Learned, s.LearnedExact = n, exact
		}
		p.drain()
	}
	if w.rtt {
		r, err := runRTT(eps[0], eps[1], next(), w.size, opt.RTTCount, 10*opt.Dur+time.Second, samples)
		if err != nil {
			s.Err = err.Error()
		}
		n := uint64(len(r.Samples))
		s.Sent, s.Got = n+r.Lost, n
		if s.Sent > 0 {
			s.LossPct = 100 * float64(r.Lost) / float64(s.Sent)
		}
		if n > 0 {
			q := func(f float64) time.Duration { return r.Samples[min(int(f*float64(n)), int(n)-1)] }
			s.P50, s.P99, s.P999 = q(0.50), q(0.99), q(0.999)
		}
		return s
	}
	var flows []flow
	if w.bcast {
		flows = []flow{{id: next(), src: eps[0], dst: broadcast, rcv: eps[1 : 1+bcastReceivers]}}
	}
	for k := range w.pairs {
		flows = append(flows, flow{id: next(), src: eps[2*k], dst: eps[2*k+1].mac, rcv: eps[2*k+1 : 2*k+2]})
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t, err := runFlows(flows, w.size, opt.Dur, 0, w.window)
	runtime.ReadMemStats(&m1)
	if err != nil {
		s.Err = err.Error()
	}
	s.Sent, s.Got, s.Reorder, s.Corrupt = t.Sent, t.Got, t.Reorder, t.Corrupt
	perRcv := 1.0
	if w.bcast {
		perRcv = bcastReceivers // frames/s each receiver got
	}
	if t.Elapsed > 0 {
		s.FramesPerSec = float64(t.Got) / perRcv / t.Elapsed.Seconds()
		s.Gbps = s.FramesPerSec * float64(w.size) * 8 / 1e9
	}
	if t.Sent > 0 {
		s.LossPct = 100 * float64(t.Lost) / float64(t.Sent)
	}
	if t.Got > 0 {
		s.MallocsPerFrame = float64(m1.Mallocs-m0.Mallocs) / float64(t.Got)
	}
	return s
}

func (s Sample) short(w string) string {
	if s.Err != "" && s.Got == 0 {
		return "error: " + oneLine(s.Err)
	}
	var b strings.Builder
	if w == WRTT {
		fmt.Fprintf(&b, "p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs", us(s.P50), us(s.P99), us(s.P999))
		if s.Sent > s.Got {
			fmt.Fprintf(&b, ", %d lost", s.Sent-s.Got)
		}
	} else {
		fmt.Fprintf(&b, "%s fps, loss %.2g%%", si(s.FramesPerSec), s.LossPct)
		if s.Learned >= 0 {
			approx := ""
			if !s.LearnedExact {
				approx = "≈"
			}
			fmt.Fprintf(&b, ", %s%d MACs in table", approx, s.Learned)
		}
		if s.Reorder+s.Corrupt > 0 {
			fmt.Fprintf(&b, ", reorder %d corrupt %d", s.Reorder, s.Corrupt)
		}
	}
	if s.Err != "" {
		b.WriteString(", error: " + oneLine(s.Err))
	}
	return b.String()
}

func machine() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	kv, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(kv))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
