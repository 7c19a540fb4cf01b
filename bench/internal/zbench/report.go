package zbench

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// si prints a rate with a k or M suffix.
func si(v float64) string {
	switch { // thresholds where rounding would print 1000k or 10.00M
	case v >= 9.995e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 999.5e3:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	v := slices.Clone(vals)
	sort.Float64s(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// spread is "median (min–max)" of the values.
func spread(vals []float64, f func(float64) string) string {
	if len(vals) == 0 {
		return "—"
	}
	med := median(vals)
	lo, hi := slices.Min(vals), slices.Max(vals)
	if len(vals) == 1 || f(lo) == f(hi) {
		return f(med)
	}
	return fmt.Sprintf("%s (%s–%s)", f(med), f(lo), f(hi))
}

func pick(ss []Sample, f func(Sample) float64) []float64 {
	out := make([]float64, 0, len(ss))
	for _, s := range ss {
		out = append(out, f(s))
	}
	return out
}

func fps(s Sample) float64  { return s.FramesPerSec }
func loss(s Sample) float64 { return s.LossPct }

func pct(v float64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2g%%", v)
}

// rateCell is frames/s with its spread and the loss, "—" if not run.
func rateCell(ss []Sample) string {
	if len(ss) == 0 {
		return "—"
	}
	l := pick(ss, loss)
	if slices.Max(l) == 0 {
		return spread(pick(ss, fps), si) + ", 0 loss"
	}
	return spread(pick(ss, fps), si) + ", loss " + spread(l, pct)
}

// footnotes numbers the n/a reasons of a table.
type footnotes struct{ reasons []string }

func (f *footnotes) ref(why string) string {
	i := slices.Index(f.reasons, why)
	if i < 0 {
		f.reasons = append(f.reasons, why)
		i = len(f.reasons) - 1
	}
	return fmt.Sprintf("n/a [%d]", i+1)
}

func (f *footnotes) write(b *strings.Builder) {
	for i, r := range f.reasons {
		fmt.Fprintf(b, "[%d] %s  \n", i+1, r)
	}
	if len(f.reasons) > 0 {
		b.WriteString("\n")
	}
}

// cell renders one workload of a peer with render, or its n/a reason.
func (p *PeerResult) cell(w string, fn *footnotes, render func([]Sample) string) string {
	if why := p.NA[w]; why != "" {
		return fn.ref(why)
	}
	return render(p.Samples[w])
}

// Markdown renders the report: one pair, many endpoints, scale, checks.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# zbench %s\n\n", r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	mode := "full"
	if r.Opt.Quick {
		mode = "quick"
	}
	fmt.Fprintf(&b, "Machine: %s, %d CPUs; %s; %s; load average (1/5/15 min) %s. "+
		"Mode %s: %d runs per cell, peers alternating (median, min–max in brackets); throughput runs of %v; "+
		"%d ping-pongs per latency run; %d MACs for the table workload. Harness time %v.\n\n",
		r.Machine, r.CPUs, r.Kernel, r.Go, r.Load, mode, r.Opt.Runs, r.Opt.Dur, r.Opt.RTTCount, r.Opt.LearnMACs,
		r.Elapsed.Round(time.Second))
	for _, p := range r.Peers {
		if p.Skipped != "" {
			fmt.Fprintf(&b, "**%s skipped**: %s\n\n", p.Name, oneLine(p.Skipped))
		}
	}
	var ran []*PeerResult
	for _, p := range r.Peers {
		if p.Skipped == "" {
			ran = append(ran, p)
		}
	}
	has := func(w string) bool { return slices.Contains(r.Workloads, w) }
	var fn footnotes
	usf := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	gb := func(v float64) string { return fmt.Sprintf("%.2f", v) }

	b.WriteString("## One pair\n\nEndpoint A sends to B, unpaced (as fast as the transport takes frames) or with at most " +
		fmt.Sprint(Window) + " frames in flight; ping-pong: A pings, B answers, one at a time.\n\n")
	b.WriteString("| what connects the endpoints | 64 B frames/s | 1514 B frames/s | 1514 B Gbit/s | " +
		fmt.Sprintf("64 B, ≤%d in flight", Window) + " | ping-pong RTT p50 / p99 / p99.9 µs |\n|---|---|---|---|---|---|\n")
	for _, p := range ran {
		rtt := p.cell(WRTT, &fn, func(ss []Sample) string {
			return fmt.Sprintf("%s / %s / %s",
				spread(pick(ss, func(s Sample) float64 { return us(s.P50) }), usf),
				spread(pick(ss, func(s Sample) float64 { return us(s.P99) }), usf),
				spread(pick(ss, func(s Sample) float64 { return us(s.P999) }), usf))
		})
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", p.Name,
			p.cell(W64, &fn, rateCell), p.cell(W1514, &fn, rateCell),
			p.cell(W1514, &fn, func(ss []Sample) string { return spread(pick(ss, func(s Sample) float64 { return s.Gbps }), gb) }),
			p.cell(W64W, &fn, rateCell), rtt)
	}
	b.WriteString("\n")

	b.WriteString("## Many endpoints\n\nPairs: endpoint 2k sends to 2k+1, all pairs at once, unpaced; frames/s is the total delivered. " +
		fmt.Sprintf("Broadcast: endpoint 0 sends to ff:ff:ff:ff:ff:ff, each of %d receivers must get every frame; ", bcastReceivers) +
		fmt.Sprintf("the sender keeps ≤%d frames in flight to the slowest receiver; frames/s is what each receiver gets.\n\n", Window))
	b.WriteString("| what connects the endpoints | 2 pairs 64 B | 8 pairs 64 B | " + fmt.Sprintf("broadcast 1→%d 64 B", bcastReceivers) + " |\n|---|---|---|---|\n")
	for _, p := range ran {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.Name, p.cell(W2P, &fn, rateCell), p.cell(W8P, &fn, rateCell), p.cell(WBcast, &fn, rateCell))
	}
	b.WriteString("\n")

	b.WriteString(fmt.Sprintf("## Scale\n\nThe 1-pair 64 B unpaced measurement again, with idle ports attached (they never send "+
		"and are never read), and after a third endpoint sent from %d distinct source MACs (to A, ≤%d in flight) so a "+
		"learning switch holds them all; its MACs in the table are counted through the switch's own interface before each run.\n\n",
		r.Opt.LearnMACs, Window))
	cols := []string{W64}
	heads := []string{"no idle ports (= 1 pair 64 B)"}
	for _, w := range []string{WIdle8, WIdle64, WIdle256} {
		if has(w) {
			cols = append(cols, w)
			heads = append(heads, strings.TrimPrefix(w, "1 pair, "))
		}
	}
	b.WriteString("| what connects the endpoints | " + strings.Join(heads, " | ") + fmt.Sprintf(" | %d MACs learned | MACs in table |\n", r.Opt.LearnMACs))
	b.WriteString("|---" + strings.Repeat("|---", len(cols)+2) + "|\n")
	for _, p := range ran {
		var cells []string
		for _, w := range cols {
			cells = append(cells, p.cell(w, &fn, rateCell))
		}
		cells = append(cells, p.cell(WLearn, &fn, rateCell))
		cells = append(cells, p.cell(WLearn, &fn, func(ss []Sample) string {
			n := pick(ss, func(s Sample) float64 { return float64(s.Learned) })
			if len(n) == 0 || slices.Max(n) < 0 {
				return "—"
			}
			approx := ""
			if !ss[0].LearnedExact {
				approx = "≈" // estimated from a sample of the learned MACs
			}
			return approx + spread(n, func(v float64) string { return fmt.Sprintf("%.0f", v) })
		}))
		fmt.Fprintf(&b, "| %s | %s |\n", p.Name, strings.Join(cells, " | "))
	}
	b.WriteString("\n")
	fn.write(&b)

	b.WriteString("## Checks\n\n| what connects the endpoints | reordered | corrupt | generator mallocs/frame (max) | errors |\n|---|---|---|---|---|\n")
	for _, p := range ran {
		var reorder, corrupt uint64
		maxMalloc := 0.0
		var errs []string
		for _, ss := range p.Samples {
			for _, s := range ss {
				reorder += s.Reorder
				corrupt += s.Corrupt
				maxMalloc = max(maxMalloc, s.MallocsPerFrame)
				if s.Err != "" {
					errs = append(errs, s.Err)
				}
			}
		}
		e := "none"
		if len(errs) > 0 {
			slices.Sort(errs)
			e = oneLine(strings.Join(slices.Compact(errs), "; "))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %s |\n", p.Name, reorder, corrupt, maxMalloc, e)
	}
	b.WriteString("\n## Versions and notes\n\n")
	for _, p := range ran {
		fmt.Fprintf(&b, "- %s: %s", p.Name, p.Version)
		if p.Note != "" {
			fmt.Fprintf(&b, " — %s", p.Note)
		}
		b.WriteString("\n")
	}
	b.WriteString("\nFrame sizes are bytes on the wire without FCS. Gbit/s counts frame bytes only. Loss = frames sent but never " +
		"delivered (for a broadcast: per receiver); stream transports push back, so there only a switch drops. Every frame " +
		"carries flow, sequence number and send time; the receiver checks length, header and every payload byte, and that " +
		"sequence numbers never go back. mallocs/frame counts the whole harness process's heap allocations per delivered " +
		"frame (the switches run as separate processes).\n")
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Write stores the Markdown in dir/<date>.md and the chart next to it
// (…-quick.* in quick mode) and returns the Markdown's path.
func (r *Report) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results dir: %w", err)
	}
	name := r.Date.UTC().Format("2006-01-02")
	if r.Opt.Quick {
		name += "-quick"
	}
	path := filepath.Join(dir, name+".md")
	if err := os.WriteFile(path, []byte(r.Markdown()), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".svg"), []byte(r.SVG()), 0o644); err != nil {
		return "", fmt.Errorf("write chart: %w", err)
	}
	return path, nil
}
