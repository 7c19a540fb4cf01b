// Package zbench is the harness behind bench/cmd/zbench: it starts the
// switches a user could pick (zswitch over unix and TCP, the Linux bridge,
// QEMU's multicast hub, gvproxy, vde_switch) and a no-switch baseline, emulates two guest endpoints on each, and measures
// frames/s, Gbit/s, loss and request-response round trips.
package zbench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// aborted ends Run early (Abort); Run still stops its peers.
var aborted atomic.Bool

// Abort makes a running Run stop after the current measurement and clean up.
func Abort() { aborted.Store(true) }

// Options of one harness run.
type Options struct {
	Quick    bool          // small counts, zswitch + baseline only
	Runs     int           // repetitions of every measurement (default 3)
	Dur      time.Duration // length of one throughput run (default 1s, quick 150ms)
	RTTCount int           // ping-pongs per latency run (default 20000, quick 500)
	Peers    []string      // names (substring match) to run; empty: all (quick: its own set)
	Progress io.Writer     // progress lines; nil: none
}

// Workloads, in table order.
const (
	W64   = "1 pair 64 B"
	W1514 = "1 pair 1514 B"
	W64W  = "1 pair 64 B window"
	WRTT  = "ping-pong 64 B"
)

// Window is the in-flight limit of the windowed workload: below the
// smallest queue on any path (TAP reader queue 500, CPU backlog 1000,
// zswitch's engine queue), so a switch that forwards never has to drop.
const Window = 256

// Sample is one run of one workload on one peer.
type Sample struct {
	FramesPerSec, Gbps, LossPct float64
	Sent, Got                   uint64
	Reorder, Corrupt            uint64
	MallocsPerFrame             float64
	P50, P99, P999              time.Duration
	Err                         string
}

// PeerResult holds a peer's samples per workload, or why it did not run.
type PeerResult struct {
	Name, Version, Note, Skipped string
	Samples                      map[string][]Sample
}

// Report is everything the table is made of.
type Report struct {
	Date                time.Time
	Machine, Go, Kernel string
	Opt                 Options
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
}

func (o *Options) logf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Run starts every selected peer, measures, stops them and returns the
// report. Peers that cannot start are reported as skipped, with the reason.
func Run(opt Options) (*Report, error) {
	opt.defaults()
	start := time.Now()
	rep := &Report{Date: start, Opt: opt, Machine: machine(), Go: runtime.Version(), Kernel: kernel()}
	dir, err := os.MkdirTemp("", "zbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	var live []*peer
	var results []*PeerResult
	defer func() {
		for _, p := range live {
			p.stop()
		}
	}()
	for _, f := range factories {
		if !selected(opt, f) {
			continue
		}
		pr := &PeerResult{Name: f.name, Samples: map[string][]Sample{}}
		rep.Peers = append(rep.Peers, pr)
		opt.logf("starting %s", f.name)
		p, err := f.start(dir)
		if err != nil {
			pr.Skipped = err.Error()
			opt.logf("  skipped: %v", err)
			continue
		}
		pr.Version, pr.Note = p.Version, p.Note
		// Both endpoints speak once so a learning switch knows where they are.
		if err := p.a.sendOne(macB, 0, kindAnnounce, 64); err == nil {
			err = p.b.sendOne(macA, 0, kindAnnounce, 64)
		}
		if err != nil {
			pr.Skipped = "announce: " + err.Error()
			p.stop()
			continue
		}
		live = append(live, p)
		results = append(results, pr)
	}
	time.Sleep(50 * time.Millisecond)
	// An untimed warm-up per peer: page faults, socket buffers, learning.
	flow := uint16(1)
	for _, p := range live {
		flow++
		runThroughput(p.a, p.b, flow, 64, 50*time.Millisecond, 0)
	}

	samples := make([]int64, 0, opt.RTTCount)
	for run := range opt.Runs {
		for _, w := range []string{W64, W1514, W64W, WRTT} {
			for i, p := range live {
				if aborted.Load() {
					return nil, fmt.Errorf("aborted")
				}
				flow++
				s := measure(p, w, flow, opt, samples)
				results[i].Samples[w] = append(results[i].Samples[w], s)
				opt.logf("run %d/%d  %-24s %-15s %s", run+1, opt.Runs, results[i].Name, w, s.short(w))
			}
		}
	}
	for i, p := range live {
		if p.diag != nil {
			opt.logf("%s counters after the runs:\n%s", results[i].Name, p.diag())
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

func selected(opt Options, f peerFactory) bool {
	if len(opt.Peers) > 0 {
		for _, n := range opt.Peers {
			if strings.Contains(strings.ToLower(f.name), strings.ToLower(n)) {
				return true
			}
		}
		return false
	}
	return f.quick || !opt.Quick
}

func measure(p *peer, w string, flow uint16, opt Options, samples []int64) Sample {
	var s Sample
	p.a.drain(5 * time.Millisecond)
	p.b.drain(5 * time.Millisecond)
	switch w {
	case W64, W1514, W64W:
		size, window := 64, uint64(0)
		if w == W1514 {
			size = 1514
		}
		if w == W64W {
			window = Window
		}
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		t, err := runThroughput(p.a, p.b, flow, size, opt.Dur, window)
		runtime.ReadMemStats(&m1)
		if err != nil {
			s.Err = err.Error()
		}
		s.Sent, s.Got, s.Reorder, s.Corrupt = t.Sent, t.Got, t.Reorder, t.Corrupt
		if t.Elapsed > 0 {
			s.FramesPerSec = float64(t.Got) / t.Elapsed.Seconds()
			s.Gbps = s.FramesPerSec * float64(size) * 8 / 1e9
		}
		if t.Sent > 0 {
			s.LossPct = 100 * float64(t.Lost) / float64(t.Sent)
		}
		if t.Got > 0 {
			s.MallocsPerFrame = float64(m1.Mallocs-m0.Mallocs) / float64(t.Got)
		}
	case WRTT:
		r, err := runRTT(p.a, p.b, flow, 64, opt.RTTCount, 10*opt.Dur+time.Second, samples)
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
	}
	return s
}

func (s Sample) short(w string) string {
	if w == WRTT {
		return fmt.Sprintf("p50 %.1fµs p99 %.1fµs p99.9 %.1fµs lost %d %s", us(s.P50), us(s.P99), us(s.P999), s.Sent-s.Got, s.Err)
	}
	return fmt.Sprintf("%s frames/s %.2f Gbit/s loss %.2f%% reorder %d corrupt %d mallocs/frame %.4f %s",
		si(s.FramesPerSec), s.Gbps, s.LossPct, s.Reorder, s.Corrupt, s.MallocsPerFrame, s.Err)
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func sortInt64(v []int64) { slices.Sort(v) }

// spread is "median (min–max)" of the values.
func spread(vals []float64, f func(float64) string) string {
	if len(vals) == 0 {
		return "—"
	}
	v := slices.Clone(vals)
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if len(v) == 1 {
		return f(med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(med), f(v[0]), f(v[len(v)-1]))
}

func pick(ss []Sample, f func(Sample) float64) []float64 {
	out := make([]float64, 0, len(ss))
	for _, s := range ss {
		out = append(out, f(s))
	}
	return out
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# zbench %s\n\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	mode := "full"
	if r.Opt.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, "Machine: %s; kernel %s; %s; %d CPUs. Mode %s: %d runs per cell (median, min–max in brackets), "+
		"throughput runs of %v (unpaced sender, A→B one way), %d ping-pongs per latency run. Harness time %v.\n\n",
		r.Machine, r.Kernel, r.Go, runtime.NumCPU(), mode, r.Opt.Runs, r.Opt.Dur, r.Opt.RTTCount, r.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| what connects the endpoints | 1 pair 64 B frames/s | 1 pair 1514 B frames/s | 1514 B Gbit/s | loss 64 B / 1514 B | 64 B, ≤%d in flight: frames/s (loss) | ping-pong RTT p50 / p99 / p99.9 µs | checks |\n", Window)
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	num := func(v float64) string { return si(v) }
	pct := func(v float64) string { return fmt.Sprintf("%.2g%%", v) }
	usf := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	for _, p := range r.Peers {
		if p.Skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped: %s | | | | | | |\n", p.Name, oneLine(p.Skipped))
			continue
		}
		s64, s1514, s64w, srtt := p.Samples[W64], p.Samples[W1514], p.Samples[W64W], p.Samples[WRTT]
		var checks []string
		var errs []string
		var reorder, corrupt uint64
		maxMalloc := 0.0
		for _, ss := range [][]Sample{s64, s1514, s64w, srtt} {
			for _, s := range ss {
				reorder += s.Reorder
				corrupt += s.Corrupt
				maxMalloc = max(maxMalloc, s.MallocsPerFrame)
				if s.Err != "" {
					errs = append(errs, s.Err)
				}
			}
		}
		checks = append(checks, fmt.Sprintf("reorder %d, corrupt %d", reorder, corrupt))
		checks = append(checks, fmt.Sprintf("≤%.3f mallocs/frame", maxMalloc))
		if len(errs) > 0 {
			checks = append(checks, "errors: "+oneLine(strings.Join(errs, "; ")))
		}
		rtt := fmt.Sprintf("%s / %s / %s",
			spread(pick(srtt, func(s Sample) float64 { return us(s.P50) }), usf),
			spread(pick(srtt, func(s Sample) float64 { return us(s.P99) }), usf),
			spread(pick(srtt, func(s Sample) float64 { return us(s.P999) }), usf))
		win := fmt.Sprintf("%s (%s)", spread(pick(s64w, func(s Sample) float64 { return s.FramesPerSec }), num),
			spread(pick(s64w, func(s Sample) float64 { return s.LossPct }), pct))
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s / %s | %s | %s | %s |\n", p.Name,
			spread(pick(s64, func(s Sample) float64 { return s.FramesPerSec }), num),
			spread(pick(s1514, func(s Sample) float64 { return s.FramesPerSec }), num),
			spread(pick(s1514, func(s Sample) float64 { return s.Gbps }), func(v float64) string { return fmt.Sprintf("%.2f", v) }),
			spread(pick(s64, func(s Sample) float64 { return s.LossPct }), pct),
			spread(pick(s1514, func(s Sample) float64 { return s.LossPct }), pct),
			win, rtt, strings.Join(checks, "; "))
	}
	b.WriteString("\nVersions and notes:\n\n")
	for _, p := range r.Peers {
		if p.Skipped != "" {
			continue
		}
		fmt.Fprintf(&b, "- %s: %s", p.Name, p.Version)
		if p.Note != "" {
			fmt.Fprintf(&b, " — %s", p.Note)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nFrame sizes are bytes on the fd (no FCS). Gbit/s counts frame bytes only. Loss = frames sent but never delivered " +
		"(stream transports push back, so it is 0 unless a switch drops). Every frame carries flow, sequence number and send time; " +
		"the receiver checks length, header and every payload byte, and that sequence numbers never go back. " +
		"mallocs/frame is the whole harness process's heap allocations per delivered frame (switches run as separate processes).\n")
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Write stores the Markdown in dir/<date>.md (…-quick.md in quick mode)
// and returns the path.
func (r *Report) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := r.Date.UTC().Format("2006-01-02")
	if r.Opt.Quick {
		name += "-quick"
	}
	path := filepath.Join(dir, name+".md")
	return path, os.WriteFile(path, []byte(r.Markdown()), 0o644)
}

func machine() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	out, _ := exec.Command("uname", "-m").Output()
	return strings.TrimSpace(string(out))
}

func kernel() string {
	kv, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(kv))
}
