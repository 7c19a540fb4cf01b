package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zswitch/zswitch/control"
)

// TestImpairmentLab puts two hosts (network namespaces on veth pairs) on
// zswitch, impairs the link to one of them and watches the kernel's ping:
// a 50 ms ± 5 ms link shows in every round trip, and a lossy link with a
// fixed seed loses the same pings each time the seed is set again. The
// hosts use static neighbours and no IPv6, so the only frames crossing the
// impaired link are the pings: the switch's loss counter must equal the
// pings that got no answer.
func TestImpairmentLab(t *testing.T) {
	needRoot(t)
	sw := newNetns(t, "sw", false)
	h1, h2 := newNetns(t, "imp1", false), newNetns(t, "imp2", false)
	macs := []string{"02:00:5e:10:00:01", "02:00:5e:10:00:02"}
	for i, h := range []string{h1, h2} {
		v := fmt.Sprintf("v%d", i+1)
		sh(t, "ip", "-n", sw, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h)
		sh(t, "ip", "-n", sw, "link", "set", v, "up")
		sh(t, "ip", "-n", h, "link", "set", "eth0", "address", macs[i])
		sh(t, "ip", "-n", h, "addr", "add", fmt.Sprintf("10.81.0.%d/24", i+1), "dev", "eth0")
		sh(t, "ip", "-n", h, "link", "set", "eth0", "up")
	}
	sh(t, "ip", "-n", h1, "neigh", "replace", "10.81.0.2", "lladdr", macs[1], "dev", "eth0", "nud", "permanent")
	sh(t, "ip", "-n", h2, "neigh", "replace", "10.81.0.1", "lladdr", macs[0], "dev", "eth0", "nud", "permanent")

	dir := t.TempDir()
	ctl := dir + "/ctl"
	bin := buildZswitch(t)
	// h2's link delays what zswitch sends it by 50 ms ± 5 ms (uniform):
	// each echo request; the replies come back unimpaired.
	z := exec.Command("ip", "netns", "exec", sw, bin, "run", "--control", ctl,
		"--port", "packet:v1,name=h1", "--port", "packet:v2,name=h2,out.delay=50ms,out.jitter=5ms")
	startProcess(t, z)
	waitFile(t, ctl)
	c := control.NewClient(ctl)

	t.Run("delay", func(t *testing.T) {
		rtts, _ := pings(t, h1, "10.81.0.2", 20, "0.05")
		if len(rtts) < 18 {
			t.Fatalf("%d of 20 pings answered over a lossless link", len(rtts))
		}
		lo, hi := slices.Min(rtts), slices.Max(rtts)
		t.Logf("RTT over a 50ms±5ms link: min %.2f ms, max %.2f ms (%d pings)", lo, hi, len(rtts))
		// Nothing can arrive early: the delay is at least 45 ms.
		if lo < 45 {
			t.Errorf("a ping took %.2f ms over a link delayed 50±5 ms", lo)
		}
		if hi-lo < 1 {
			t.Errorf("RTTs span %.2f ms: no jitter", hi-lo)
		}
		pi, err := c.Port("h2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(pi.Config, "out: delay=50ms jitter=5ms") {
			t.Errorf("ctl shows h2's config as %q", pi.Config)
		}
	})

	lossRun := func(t *testing.T) (answered []int, lost uint64) {
		t.Helper()
		before := dropsOut(t, c, "h2", "link_loss")
		_, seqs := pings(t, h1, "10.81.0.2", 200, "0.01")
		return seqs, dropsOut(t, c, "h2", "link_loss") - before
	}
	set := func(t *testing.T, opts map[string]string) {
		t.Helper()
		if _, err := c.SetOptions("h2", opts); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("loss", func(t *testing.T) {
		// At run time: no delay, 25 % loss, seed 1.
		set(t, map[string]string{"out.delay": "", "out.jitter": "", "out.loss": "25%", "seed": "1"})
		first, lost1 := lossRun(t)
		if got := 200 - len(first); uint64(got) != lost1 {
			t.Errorf("%d pings unanswered, zswitch counted %d link_loss drops", got, lost1)
		}
		if lost1 < 25 || lost1 > 75 {
			t.Errorf("lost %d of 200 at 25 %%", lost1)
		}
		// Another seed, then seed 1 again: the streams restart, and the
		// same pings are lost.
		set(t, map[string]string{"seed": "2"})
		set(t, map[string]string{"seed": "1"})
		second, lost2 := lossRun(t)
		if !slices.Equal(first, second) {
			t.Errorf("seed 1 answered different pings: %d then %d answered", len(first), len(second))
		}
		if lost1 != lost2 {
			t.Errorf("seed 1 lost %d, then %d", lost1, lost2)
		}
		t.Logf("seed 1 at 25 %% loss: %d of 200 pings lost, twice the same ones", lost1)
	})
}

var (
	rttRE = regexp.MustCompile(`icmp_seq=(\d+) .*time=([0-9.]+) ms`)
)

// pings sends count pings from netns ns and returns the round-trip times
// (ms) and the sequence numbers answered, in order.
func pings(t *testing.T, ns, addr string, count int, interval string) (rtts []float64, seqs []int) {
	t.Helper()
	out, _ := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-c", strconv.Itoa(count), "-i", interval, "-W", "2", addr).CombinedOutput()
	for _, m := range rttRE.FindAllStringSubmatch(string(out), -1) {
		seq, _ := strconv.Atoi(m[1])
		rtt, _ := strconv.ParseFloat(m[2], 64)
		seqs = append(seqs, seq)
		rtts = append(rtts, rtt)
	}
	return rtts, seqs
}

// dropsOut reads one egress drop counter of a port through the control API.
func dropsOut(t *testing.T, c *control.Client, port, reason string) uint64 {
	t.Helper()
	pi, err := c.Port(port)
	if err != nil {
		t.Fatal(err)
	}
	return pi.DropsOut[reason]
}
