package main

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/zswitch/zswitch/control"
)

// staticNeigh pins each host's ARP entry for the other, so the kernels
// send no ARP (requests, or the unicast probes that follow a ping a few
// seconds later) and every frame a subtest counts is one it caused.
func staticNeigh(t *testing.T, a, b *labHost) {
	t.Helper()
	for _, p := range [][2]*labHost{{a, b}, {b, a}} {
		sh(t, "ip", "-n", p[0].ns, "neigh", "replace", p[1].ip, "lladdr", p[1].mac.String(), "dev", "eth0", "nud", "permanent")
	}
}

// TestPortSecurityLab runs the port security options of the README ("Port
// security") against hosts in network namespaces, one scenario per VLAN on
// one zswitch:
//
//   - VLAN 10: two isolated=true ports do not reach each other (not even
//     by unicast to a known MAC, counted as isolated) but both reach, and
//     are reached by, a port that is not isolated;
//   - VLAN 20: mac-limit=2 forwards from two source MACs and drops the
//     frames of the third and fourth as mac_limit;
//   - VLAN 30: a MAC learned on a sticky=true port is bound to it: the
//     same source MAC on another port is dropped as mac_violation;
//   - VLAN 40: storm=50,storm-burst=20 passes at most the burst plus 50
//     broadcasts per second of a ping -b flood and drops the rest as storm,
//     while unicast is never limited;
//   - VLAN 50: two hosts with one MAC make zswitch warn, naming the MAC
//     and both ports, and count the moves (zswitch_port_mac_moves_total,
//     zswitch_fdb_flapping_macs).
//
// Drops are checked exactly in the control API, in /metrics and in the
// totals zswitch logs at exit.
func TestPortSecurityLab(t *testing.T) {
	needRootAnd(t)
	const pre = "zssec"
	sw := netnsNamed(t, pre, "sw", false)
	host := func(role, mac, ip string) *labHost {
		return labAddHost(t, pre, sw, role, pre+"-"+role, mac, ip, "")
	}
	iso1 := host("iso1", "02:7a:0a:00:00:01", "10.86.10.1/24")
	iso2 := host("iso2", "02:7a:0a:00:00:02", "10.86.10.2/24")
	open := host("open", "02:7a:0a:00:00:03", "10.86.10.3/24")
	lim := host("lim", "02:7a:14:00:00:01", "10.86.20.1/24")
	limPeer := host("limpeer", "02:7a:14:00:00:02", "10.86.20.2/24")
	stk := host("stk", "02:7a:1e:00:00:01", "10.86.30.1/24")
	stkPeer := host("stkpeer", "02:7a:1e:00:00:02", "10.86.30.2/24")
	stm := host("stm", "02:7a:28:00:00:01", "10.86.40.1/24")
	sink := host("sink", "02:7a:28:00:00:02", "10.86.40.2/24")
	const dupMAC = "02:7a:32:00:00:dd" // on both, like two QEMU guests started without mac=
	dup1 := host("dup1", dupMAC, "10.86.50.1/24")
	dup2 := host("dup2", dupMAC, "10.86.50.2/24")
	ref := host("ref", "02:7a:32:00:00:03", "10.86.50.3/24")

	const (
		metricsAddr = "127.0.0.1:9100" // inside the switch's namespace
		stormPPS    = 50
		stormBurst  = 20
	)
	port := func(h *labHost, opts string) string {
		return fmt.Sprintf("packet:%s,name=%s,%s", h.swIf, h.role, opts)
	}
	s := startLabSwitch(t, sw, buildZswitch(t), t.TempDir(), "--metrics-addr", metricsAddr,
		"--port", port(iso1, "vlan=10,isolated=true"),
		"--port", port(iso2, "vlan=10,isolated=true"),
		"--port", port(open, "vlan=10"),
		"--port", port(lim, "vlan=20,mac-limit=2"),
		"--port", port(limPeer, "vlan=20"),
		"--port", port(stk, "vlan=30,sticky=true"),
		"--port", port(stkPeer, "vlan=30"),
		"--port", port(stm, fmt.Sprintf("vlan=40,storm=%d,storm-burst=%d", stormPPS, stormBurst)),
		"--port", port(sink, "vlan=40"),
		"--port", port(dup1, "vlan=50"),
		"--port", port(dup2, "vlan=50"),
		"--port", port(ref, "vlan=50"))
	metrics := func(t *testing.T) string { return scrapeMetrics(t, sw, metricsAddr) }
	// metric checks one series' value in a scrape.
	metric := func(t *testing.T, body, name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := promValue(body, name, labels)
		if !ok || got != want {
			t.Errorf("metric %s%v = %v (found: %v), want %v", name, labels, got, ok, want)
		}
	}
	dropMetric := func(t *testing.T, body, port, reason string, want float64) {
		t.Helper()
		metric(t, body, "zswitch_port_drops_total", map[string]string{"port": port, "direction": "in", "reason": reason}, want)
	}
	fails := func(h *labHost, args ...string) bool {
		return exec.Command("ip", append([]string{"netns", "exec", h.ns, "ping"}, args...)...).Run() != nil
	}
	marker := []byte("zssec raw frame")
	const exp = 0x88b5 // IEEE local experimental: no host stack answers it

	t.Run("isolated", func(t *testing.T) {
		for _, c := range [][2]*labHost{{iso1, open}, {iso2, open}, {open, iso1}, {open, iso2}} {
			if !c[0].ping(c[1].ip) {
				t.Errorf("%s cannot reach %s", c[0].role, c[1].role)
			}
		}
		p1 := s.port(t, "iso1")
		sniff := startSniffer(t, iso2.ns, "eth0")
		// ARP requests flood to every port but the other isolated one.
		if !fails(iso1, "-c2", "-i0.5", "-W1", iso2.ip) {
			t.Errorf("isolated iso1 reached isolated iso2")
		}
		// With iso2's MAC known (zswitch learned it, iso1 pins it), the
		// unicast is dropped and counted.
		iso1.waitUnresolved(t, iso2.ip)
		sh(t, "ip", "-n", iso1.ns, "neigh", "replace", iso2.ip, "lladdr", iso2.mac.String(), "dev", "eth0", "nud", "permanent")
		if !fails(iso1, "-c3", "-i0.2", "-W1", iso2.ip) {
			t.Errorf("isolated iso1 reached isolated iso2 by unicast")
		}
		labWait(t, 30*time.Second, "no isolated drops on iso1", func() bool {
			return s.port(t, "iso1").DropsIn["isolated"]-p1.DropsIn["isolated"] >= 3
		})
		time.Sleep(200 * time.Millisecond)
		sniff.stop()
		if d := s.port(t, "iso1").DropsIn["isolated"] - p1.DropsIn["isolated"]; d != 3 {
			t.Errorf("iso1: %d isolated drops, want 3 (the echo requests to iso2's MAC)", d)
		}
		if n := sniff.from(iso1.mac); n != 0 {
			t.Errorf("iso2 received %d frames from iso1", n)
		}
		if !fails(iso2, "-c2", "-i0.5", "-W1", iso1.ip) {
			t.Errorf("isolated iso2 reached isolated iso1")
		}
		if !open.ping(iso1.ip) || !open.ping(iso2.ip) {
			t.Errorf("the open port lost the isolated ones")
		}
		dropMetric(t, metrics(t), "iso1", "isolated", 3)
	})

	t.Run("mac-limit", func(t *testing.T) {
		staticNeigh(t, lim, limPeer)
		if !lim.ping(limPeer.ip) { // lim's own MAC: the first of two
			t.Fatal("lim cannot reach its peer")
		}
		labWait(t, 10*time.Second, "lim's MAC not learned", func() bool { return s.port(t, "lim").MACs == 1 })
		p := s.port(t, "lim")
		sniff := startSniffer(t, limPeer.ns, "eth0")
		second, third, fourth := net.HardwareAddr{2, 0x7a, 0x14, 0, 1, 1}, net.HardwareAddr{2, 0x7a, 0x14, 0, 1, 2}, net.HardwareAddr{2, 0x7a, 0x14, 0, 1, 3}
		var frames [][]byte
		add := func(src net.HardwareAddr, n int) {
			for range n {
				frames = append(frames, labFrame(broadcastMAC, src, 0, exp, marker))
			}
		}
		add(second, 3) // learned: the limit is reached
		add(third, 4)  // dropped
		add(fourth, 2) // dropped
		add(second, 2) // known: still forwarded
		rawSend(t, lim.ns, "eth0", frames...)
		labWait(t, 30*time.Second, "zswitch did not receive the raw frames", func() bool {
			return s.port(t, "lim").RxFrames-p.RxFrames >= uint64(len(frames))
		})
		labWait(t, 30*time.Second, "the peer did not receive the second MAC's frames", func() bool { return sniff.from(second) >= 5 })
		if !lim.ping(limPeer.ip) {
			t.Errorf("lim's own (first) MAC stopped working at the limit")
		}
		time.Sleep(200 * time.Millisecond)
		sniff.stop()
		now := s.port(t, "lim")
		if d := now.DropsIn["mac_limit"] - p.DropsIn["mac_limit"]; d != 6 || now.MACs != 2 {
			t.Errorf("lim: %d mac_limit drops with %d MACs learned, want 6 drops (the third and fourth MAC) and 2 MACs", d, now.MACs)
		}
		if a, b, c := sniff.from(second), sniff.from(third), sniff.from(fourth); a != 5 || b != 0 || c != 0 {
			t.Errorf("the peer received %d, %d, %d frames from the second, third and fourth MAC, want 5, 0, 0", a, b, c)
		}
		fdb, err := s.c.FDB()
		if err != nil {
			t.Fatal(err)
		}
		var on []string
		for _, e := range fdb {
			if e.Port == "lim" {
				on = append(on, e.MAC.String())
			}
		}
		if strings.Join(on, " ") != lim.mac.String()+" "+second.String() && strings.Join(on, " ") != second.String()+" "+lim.mac.String() {
			t.Errorf("MACs learned on lim: %v, want %s and %s", on, lim.mac, second)
		}
		body := metrics(t)
		dropMetric(t, body, "lim", "mac_limit", 6)
		metric(t, body, "zswitch_fdb_security_refused_total", map[string]string{"reason": "mac_limit"}, 6)
		metric(t, body, "zswitch_port_macs", map[string]string{"port": "lim"}, 2)
	})

	t.Run("sticky", func(t *testing.T) {
		staticNeigh(t, stk, stkPeer)
		if !stk.ping(stkPeer.ip) {
			t.Fatal("stk cannot reach its peer")
		}
		sticky := func() (port string, ok bool) {
			fdb, err := s.c.FDB()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range fdb {
				if e.MAC.String() == stk.mac.String() {
					return e.Port, e.Sticky && e.VLAN == 30
				}
			}
			return "", false
		}
		if p, ok := sticky(); p != "stk" || !ok {
			t.Fatalf("stk's MAC: on %q, sticky in VLAN 30 %v; want a sticky entry on stk", p, ok)
		}
		p := s.port(t, "stkpeer")
		sniff := startSniffer(t, stk.ns, "eth0")
		// stkpeer's host spoofs stk's MAC.
		spoof := labFrame(broadcastMAC, stk.mac, 0, exp, marker)
		rawSend(t, stkPeer.ns, "eth0", spoof, spoof, spoof, spoof)
		labWait(t, 30*time.Second, "no mac_violation drops", func() bool {
			return s.port(t, "stkpeer").DropsIn["mac_violation"]-p.DropsIn["mac_violation"] >= 4
		})
		if !stk.ping(stkPeer.ip) {
			t.Errorf("stk lost its peer after the spoofing")
		}
		time.Sleep(200 * time.Millisecond)
		sniff.stop()
		if d := s.port(t, "stkpeer").DropsIn["mac_violation"] - p.DropsIn["mac_violation"]; d != 4 {
			t.Errorf("stkpeer: %d mac_violation drops, want 4", d)
		}
		if n := sniff.from(stk.mac); n != 0 {
			t.Errorf("stk received %d frames with its own source MAC", n)
		}
		if p, ok := sticky(); p != "stk" || !ok {
			t.Errorf("stk's MAC moved to %q (sticky %v)", p, ok)
		}
		body := metrics(t)
		dropMetric(t, body, "stkpeer", "mac_violation", 4)
		metric(t, body, "zswitch_fdb_security_refused_total", map[string]string{"reason": "mac_violation"}, 4)
	})

	t.Run("storm", func(t *testing.T) {
		staticNeigh(t, stm, sink)
		if !sink.ping(stm.ip) { // both MACs learned, without a broadcast from stm
			t.Fatal("sink cannot reach stm")
		}
		// flood has stm ping the broadcast address 300 times (nobody
		// answers) and checks what storm control let through against a
		// token bucket of the configured rate and burst.
		flood := func(t *testing.T, args ...string) {
			t.Helper()
			const n = 300
			p, q, tx0 := s.port(t, "stm"), s.port(t, "sink"), stm.txPackets(t)
			cmd := exec.Command("ip", append(append([]string{"netns", "exec", stm.ns, "ping", "-b", "-q", "-W1", fmt.Sprint("-c", n)}, args...), "10.86.40.255")...)
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			var now control.PortInfo
			labWait(t, 60*time.Second, "zswitch did not receive stm's broadcasts", func() bool {
				now = s.port(t, "stm")
				return now.RxFrames-p.RxFrames >= n
			})
			// Every frame was counted within elapsed of the first send.
			elapsed := time.Since(start)
			waitTimeout(cmd, 30*time.Second) // exits 1: no replies
			sent := stm.txPackets(t) - tx0
			rx, drops, fwd := now.RxFrames-p.RxFrames, now.DropsIn["storm"]-p.DropsIn["storm"], now.Forwarded-p.Forwarded
			// The bucket holds the burst and refills one frame per 1/PPS s.
			most := stormBurst + uint64(stormPPS*elapsed.Seconds()) + 1
			t.Logf("ping -b %v: %d broadcasts reached zswitch within %v: %d passed (%d..%d allowed), %d dropped as storm",
				args, rx, elapsed.Round(time.Millisecond), fwd, stormBurst, most, drops)
			if sent != n || rx != n {
				t.Errorf("stm sent %d frames (want %d), zswitch received %d", sent, n, rx)
			}
			if drops+fwd != rx || fwd < stormBurst || fwd > most || drops == 0 {
				t.Errorf("storm control passed %d and dropped %d of %d broadcasts; want %d..%d passed, the rest dropped", fwd, drops, rx, stormBurst, most)
			}
			labWait(t, 30*time.Second, "sink did not get the broadcasts that passed", func() bool {
				return s.port(t, "sink").TxFrames-q.TxFrames >= fwd
			})
			time.Sleep(200 * time.Millisecond)
			if got := s.port(t, "sink").TxFrames - q.TxFrames; got != fwd {
				t.Errorf("sink was sent %d frames, want the %d broadcasts that passed", got, fwd)
			}
		}
		flood(t, "-l300")                                   // all at once: about the burst passes
		time.Sleep(2 * stormBurst * time.Second / stormPPS) // the bucket refills
		flood(t, "-i0.002")                                 // sustained, ping paces itself to ~100/s
		dropMetric(t, metrics(t), "stm", "storm", float64(s.port(t, "stm").DropsIn["storm"]))

		// Unicast is never limited: 200 echo requests at up to 500/s.
		p := s.port(t, "stm")
		if fails(stm, "-q", "-c200", "-i0.002", "-W1", sink.ip) {
			t.Errorf("unicast ping from stm to sink failed")
		}
		var now control.PortInfo
		labWait(t, 60*time.Second, "zswitch did not receive stm's unicast", func() bool {
			now = s.port(t, "stm")
			return now.RxFrames-p.RxFrames >= 200
		})
		if rx, d, fwd := now.RxFrames-p.RxFrames, now.DropsIn["storm"]-p.DropsIn["storm"], now.Forwarded-p.Forwarded; rx != 200 || d != 0 || fwd != 200 {
			t.Errorf("unicast from stm: received %d, %d storm drops, forwarded %d; want 200, 0, 200", rx, d, fwd)
		}
	})

	t.Run("duplicate-mac", func(t *testing.T) {
		staticNeigh(t, dup1, ref)
		staticNeigh(t, dup2, ref)
		body := metrics(t)
		moved0, _ := promValue(body, "zswitch_fdb_moved_total", nil)
		// Whoever spoke last gets the traffic: each ping moves the MAC to
		// the pinging host's port, and its reply follows.
		for _, h := range []*labHost{dup1, dup2, dup1, dup2, dup1} {
			if !h.ping(ref.ip) {
				t.Errorf("%s cannot reach ref", h.role)
			}
		}
		for _, c := range []struct {
			name  string
			moves uint64
		}{{"dup1", 2}, {"dup2", 2}, {"ref", 0}} {
			if got := s.port(t, c.name).MACMoves; got != c.moves {
				t.Errorf("port %s: %d MAC moves, want %d", c.name, got, c.moves)
			}
		}
		body = metrics(t)
		metric(t, body, "zswitch_port_mac_moves_total", map[string]string{"port": "dup1"}, 2)
		metric(t, body, "zswitch_port_mac_moves_total", map[string]string{"port": "dup2"}, 2)
		metric(t, body, "zswitch_fdb_moved_total", nil, moved0+4)
		metric(t, body, "zswitch_fdb_flapping_macs", nil, 1)
		var warns []string
		for line := range strings.SplitSeq(s.log.String(), "\n") {
			if strings.Contains(line, "a MAC moved to another port; if it keeps moving, two peers share it") {
				warns = append(warns, line)
			}
		}
		if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "mac="+dupMAC) ||
			!strings.Contains(warns[0], "from=dup1") || !strings.Contains(warns[0], "to=dup2") {
			t.Errorf("want one warning (at most one per 10 s) naming %s, dup1 and dup2; got:\n%s", dupMAC, strings.Join(warns, "\n"))
		}
	})

	// The exit totals carry every drop reason too.
	want := map[string]map[string]uint64{
		"iso1":    {"drop_in_isolated": 3},
		"lim":     {"drop_in_mac_limit": 6},
		"stkpeer": {"drop_in_mac_violation": 4},
	}
	s.stop(t)
	if t.Failed() {
		return
	}
	totals := portTotals(s.log.String())
	for port, kv := range want {
		for k, v := range kv {
			if got := totals[port][k]; got != v {
				t.Errorf("exit totals of %s: %s=%d, want %d", port, k, got, v)
			}
		}
	}
	if totals["stm"]["drop_in_storm"] == 0 {
		t.Errorf("exit totals of stm: no drop_in_storm")
	}
}
