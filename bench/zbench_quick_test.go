//go:build linux

package bench

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/zswitch/zswitch/bench/internal/zbench"
)

// TestZbenchQuick runs the harness of bench/cmd/zbench in its quick mode
// (zswitch over a unix stream socket, the same with backpressure=on, over
// unix datagram ports, and the no-switch baseline; small counts; no root
// needed) so the harness
// cannot rot. It checks the harness, not the speed: every workload ran,
// every frame intact and in order, nothing lost where the transport
// pushes back, the MAC table filled, no allocations per frame in the
// generator, and a chart that parses.
// perRunAllocs bounds what one measurement's setup may allocate in the
// generator, whatever its frame count.
const perRunAllocs = 3000

func TestZbenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds zswitch and runs it for ~15 s")
	}
	var log strings.Builder
	rep, err := zbench.Run(zbench.Options{Quick: true, Runs: 1, Progress: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Log("\n" + log.String() + "\n" + rep.Markdown())
	if len(rep.Peers) != 4 {
		t.Fatalf("quick mode ran %d peers, want 4 (baseline, zswitch, zswitch with backpressure, zswitch dgram unix)", len(rep.Peers))
	}
	for _, p := range rep.Peers {
		if p.Skipped != "" {
			t.Errorf("%s skipped: %s", p.Name, p.Skipped)
			continue
		}
		for _, w := range rep.Workloads {
			if why := p.NA[w]; why != "" {
				if !strings.HasPrefix(p.Name, "no switch") {
					t.Errorf("%s cannot run %s: %s", p.Name, w, why)
				}
				continue
			}
			ss := p.Samples[w]
			if len(ss) != 1 {
				t.Errorf("%s %s: %d samples, want 1", p.Name, w, len(ss))
				continue
			}
			s := ss[0]
			if s.Err != "" || s.Got == 0 || s.Reorder != 0 || s.Corrupt != 0 {
				t.Errorf("%s %s: err %q, got %d, reorder %d, corrupt %d", p.Name, w, s.Err, s.Got, s.Reorder, s.Corrupt)
			}
			switch {
			case w == zbench.WRTT:
				if s.P50 <= 0 || s.P999 < s.P50 {
					t.Errorf("%s %s: p50 %v p99.9 %v", p.Name, w, s.P50, s.P999)
				}
			case s.MallocsPerFrame*float64(s.Got) > max(perRunAllocs, 0.01*float64(s.Got)):
				// A run's own setup (goroutines, buffers) allocates a
				// few hundred times; one allocation per frame would be
				// thousands here.
				t.Errorf("%s %s: %.3f allocations per frame in the generator (%d frames)", p.Name, w, s.MallocsPerFrame, s.Got)
			}
			if w == zbench.WLearn && s.Learned < 5000 {
				t.Errorf("%s: %d MACs in the table after sending from 5000", p.Name, s.Learned)
			}
			if strings.HasPrefix(p.Name, "no switch") && w != zbench.WRTT && s.LossPct != 0 {
				t.Errorf("baseline %s lost %.2f%%: a socketpair cannot lose", w, s.LossPct)
			}
			if p.Name == "zswitch (backpressure)" && w != zbench.WRTT && s.LossPct != 0 {
				t.Errorf("zswitch with backpressure=on lost %.2f%% in %s: its senders should have waited", s.LossPct, w)
			}
		}
	}
	if err := xml.NewDecoder(strings.NewReader(rep.SVG())).Decode(new(struct{})); err != nil && err != io.EOF {
		t.Errorf("the chart is not well-formed XML: %v", err)
	}
}
