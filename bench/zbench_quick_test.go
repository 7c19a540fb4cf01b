//go:build linux

package bench

import (
	"strings"
	"testing"

	"github.com/zswitch/zswitch/bench/internal/zbench"
)

// TestZbenchQuick runs the harness of bench/cmd/zbench in its quick mode
// (zswitch and the no-switch baseline over unix sockets, small counts; no
// root needed) so the harness cannot rot. It checks the harness, not the
// speed: every frame intact and in order, nothing lost where the transport
// pushes back, no allocations per frame in the generator.
func TestZbenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("builds zswitch and runs it for ~10 s")
	}
	var log strings.Builder
	rep, err := zbench.Run(zbench.Options{Quick: true, Runs: 1, Progress: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Log("\n" + log.String() + "\n" + rep.Markdown())
	if len(rep.Peers) != 2 {
		t.Fatalf("quick mode ran %d peers, want 2 (baseline, zswitch)", len(rep.Peers))
	}
	for _, p := range rep.Peers {
		if p.Skipped != "" {
			t.Errorf("%s skipped: %s", p.Name, p.Skipped)
			continue
		}
		for _, w := range []string{zbench.W64, zbench.W1514, zbench.WRTT} {
			ss := p.Samples[w]
			if len(ss) != 1 {
				t.Errorf("%s %s: %d samples, want 1", p.Name, w, len(ss))
				continue
			}
			s := ss[0]
			if s.Err != "" || s.Got == 0 || s.Reorder != 0 || s.Corrupt != 0 {
				t.Errorf("%s %s: err %q, got %d, reorder %d, corrupt %d", p.Name, w, s.Err, s.Got, s.Reorder, s.Corrupt)
			}
			if w == zbench.WRTT && (s.P50 <= 0 || s.P999 < s.P50) {
				t.Errorf("%s %s: p50 %v p99.9 %v", p.Name, w, s.P50, s.P999)
			}
			if w != zbench.WRTT && s.MallocsPerFrame > 0.01 {
				t.Errorf("%s %s: %.3f allocations per frame in the generator", p.Name, w, s.MallocsPerFrame)
			}
		}
		if strings.HasPrefix(p.Name, "no switch") {
			for _, w := range []string{zbench.W64, zbench.W1514} {
				if s := p.Samples[w][0]; s.LossPct != 0 {
					t.Errorf("baseline %s lost %.2f%%: a socketpair cannot lose", w, s.LossPct)
				}
			}
		}
	}
}
