package zbench

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// TestRender renders a synthetic report with a skipped peer, an n/a
// workload and an estimated table size: the Markdown says so and the
// chart is well-formed.
func TestRender(t *testing.T) {
	s := func(fps, loss float64) Sample { return Sample{FramesPerSec: fps, LossPct: loss, Got: 1, Learned: -1} }
	r := &Report{Date: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC), Machine: "test", CPUs: 2, Opt: Options{Runs: 3, LearnMACs: 100}}
	for _, w := range workloads(false) {
		r.Workloads = append(r.Workloads, w.name)
	}
	hub := &PeerResult{Name: "QEMU multicast hub", Samples: map[string][]Sample{}, NA: map[string]string{WLearn: "a hub has no MAC table"}}
	vde := &PeerResult{Name: "vde_switch (native)", Samples: map[string][]Sample{}, NA: map[string]string{}}
	for _, w := range r.Workloads {
		for _, p := range []*PeerResult{hub, vde} {
			if p.NA[w] != "" {
				continue
			}
			p.Samples[w] = []Sample{s(1e5, 0), s(2e5, 1), s(3e5, 50)}
			if w == WRTT {
				for i := range p.Samples[w] {
					p.Samples[w][i].P50, p.Samples[w][i].P99 = 20*time.Microsecond, 90*time.Microsecond
				}
			}
		}
	}
	for i := range vde.Samples[WLearn] {
		vde.Samples[WLearn][i].Learned = 99500
	}
	r.Peers = []*PeerResult{hub, vde, {Name: "gvproxy (gvisor-tap-vsock)", Skipped: "gvproxy not installed"}}
	md := r.Markdown()
	for _, want := range []string{"200k (100k–300k), loss 1% (0–50%)", "n/a [1]", "[1] a hub has no MAC table", "≈99500",
		"**gvproxy (gvisor-tap-vsock) skipped**: gvproxy not installed", "20 / 90 / 0"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	svg := r.SVG()
	if err := xml.NewDecoder(strings.NewReader(svg)).Decode(new(struct{})); err != nil && err != io.EOF {
		t.Errorf("chart is not well-formed: %v", err)
	}
	if !strings.Contains(svg, "n/a: a hub has no MAC table") {
		t.Error("chart does not show the n/a reason")
	}
}

func TestVDEStatus(t *testing.T) {
	for l, want := range map[string]bool{
		"1000 Success": true, "vde$ 1019 No such device": true, "0000 DATA END WITH '.'": false,
		"Hash: 0100 Addr: 02:5a:00:00:10:00 VLAN 0000 to port: 003  age 0 secs": false, "vde$ ": false,
	} {
		if got := vdeStatus(l); got != want {
			t.Errorf("vdeStatus(%q) = %v, want %v", l, got, want)
		}
	}
}
