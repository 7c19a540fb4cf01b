package zbench

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
	"time"
)

// SVG draws the report as grouped horizontal bars: per workload a bar per
// peer with the median (whiskers: min–max of the runs) on a log scale,
// frames/s for throughput, µs for the ping-pong round trip. Hand-written
// SVG, so no tool is needed to regenerate it.
func (r *Report) SVG() string {
	const (
		width   = 980
		labelW  = 210 // peer names
		barW    = 560 // the log axis
		barH    = 11
		rowH    = 15
		headH   = 26
		topH    = 86
		legendH = 18
	)
	var ran []*PeerResult
	for _, p := range r.Peers {
		if p.Skipped == "" {
			ran = append(ran, p)
		}
	}
	var tput []string
	for _, w := range r.Workloads {
		if w != WRTT {
			tput = append(tput, w)
		}
	}
	sections := append(slices.Clone(tput), WRTT)
	legendRows := (len(ran) + 3) / 4
	height := topH + legendRows*legendH + len(sections)*(headH+len(ran)*rowH) + 30

	// Axis ranges: whole decades around every value shown.
	axis := func(vals []float64) (lo, hi float64) {
		lo, hi = math.Inf(1), math.Inf(-1)
		for _, v := range vals {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		if math.IsInf(lo, 1) {
			return 1, 10
		}
		return math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi*1.0001)))
	}
	var fvals, rvals []float64
	for _, p := range ran {
		for _, w := range tput {
			fvals = append(fvals, pick(p.Samples[w], fps)...)
		}
		for _, s := range p.Samples[WRTT] {
			rvals = append(rvals, us(s.P50), us(s.P99))
		}
	}
	flo, fhi := axis(fvals)
	rlo, rhi := axis(rvals)
	x := func(v, lo, hi float64) float64 {
		if v <= lo {
			return labelW
		}
		return labelW + barW*math.Log10(v/lo)/math.Log10(hi/lo)
	}

	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="16" font-weight="bold">zbench %s: zswitch and the switches users pick instead</text>`+"\n",
		esc(r.Date.UTC().Format("2006-01-02")))
	fmt.Fprintf(&b, `<text x="10" y="40">%s</text>`+"\n", esc(fmt.Sprintf("%s, %d CPUs, %s, %s; load %s; %d runs per bar: median, whiskers min–max; %v throughput runs",
		r.Machine, r.CPUs, r.Kernel, r.Go, r.Load, r.Opt.Runs, r.Opt.Dur)))
	fmt.Fprintf(&b, `<text x="10" y="56">%s</text>`+"\n", esc("Bars: frames/s delivered (log scale; broadcast: per receiver), longer is better; last panel: ping-pong round trip in µs, shorter is better (p50 bar, p99 tick)."))
	for i, p := range ran {
		lx, ly := 10+(i%4)*240, topH-14+(i/4)*legendH
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, ly, peerColor(p.Name), lx+16, ly+9, esc(p.Name))
	}
	y := topH + legendRows*legendH
	for _, w := range sections {
		lo, hi, unit := flo, fhi, "frames/s"
		if w == WRTT {
			lo, hi, unit = rlo, rhi, "µs"
		}
		sh := len(ran) * rowH
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+16, esc(w+" — "+unit))
		for d := lo; d <= hi*1.0001; d *= 10 {
			gx := x(d, lo, hi)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" fill="#888" text-anchor="middle" font-size="9">%s</text>`+"\n",
				gx, y+headH-4, gx, y+headH+sh, gx, y+headH-6, axisLabel(d, w == WRTT))
		}
		y += headH
		for _, p := range ran {
			cy := y + (rowH-barH)/2
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-6, cy+barH-1, esc(p.Name))
			ss := p.Samples[w]
			if why := p.NA[w]; why != "" || len(ss) == 0 {
				txt := "n/a"
				if why != "" {
					txt = "n/a: " + why
				}
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">%s</text>`+"\n", labelW+4, cy+barH-1, esc(txt))
				y += rowH
				continue
			}
			var vals []float64
			label, tick := "", 0.0
			if w == WRTT {
				vals = pick(ss, func(s Sample) float64 { return us(s.P50) })
				p99 := median(pick(ss, func(s Sample) float64 { return us(s.P99) }))
				tx := x(p99, lo, hi)
				tick = tx
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333" stroke-width="2"/>`+"\n", tx, cy-1, tx, cy+barH+1)
				label = fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", median(vals), p99)
			} else {
				vals = pick(ss, fps)
				label = si(median(vals))
				if l := median(pick(ss, loss)); l >= 0.05 {
					label += fmt.Sprintf(", loss %.2g%%", l)
				}
			}
			med := median(vals)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, cy, x(med, lo, hi)-labelW, barH, peerColor(p.Name))
			if len(vals) > 1 {
				wl, wh := x(slices.Min(vals), lo, hi), x(slices.Max(vals), lo, hi)
				my := float64(cy) + barH/2
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#222"/>`+"\n", wl, my, wh, my)
			}
			end := max(x(med, lo, hi), x(slices.Max(vals), lo, hi), tick)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", end+4, cy+barH-1, esc(label))
			y += rowH
		}
	}
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#888" font-size="9">%s</text>`+"\n", height-10,
		esc(fmt.Sprintf("go run ./bench/cmd/zbench — harness time %v; tables, versions and notes: %s.md", r.Elapsed.Round(time.Second), r.Date.UTC().Format("2006-01-02"))))
	b.WriteString("</svg>\n")
	return b.String()
}

// axisLabel names a decade: 10k, 100k, 1M, 10M; 10 µs, 100 µs.
func axisLabel(v float64, micro bool) string {
	if micro {
		return fmt.Sprintf("%.0f µs", v)
	}
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// peerColor: zswitch in blues, the others in colours of their own.
func peerColor(name string) string {
	colors := map[string]string{
		"no switch (socketpair)":     "#9e9e9e",
		"zswitch":                    "#0b4f9c",
		"zswitch (TCP)":              "#2c74c4",
		"zswitch (backpressure)":     "#1d3f6e",
		"zswitch (dgram unix)":       "#4f94d9",
		"zswitch (dgram UDP)":        "#7bb3e6",
		"zswitch (TAP)":              "#a9cdf0",
		"Linux bridge + TAPs":        "#e6862e",
		"QEMU multicast hub":         "#3c9c4a",
		"gvproxy (gvisor-tap-vsock)": "#c7403a",
		"vde_switch (native)":        "#8a5cb8",
		"vde_switch + vde_plug":      "#b896d6",
	}
	if c, ok := colors[name]; ok {
		return c
	}
	return "#555"
}
