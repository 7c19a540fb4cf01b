package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/internal/qemutest"
)

// needRoot skips a test that builds network namespaces when it cannot,
// unless CI demands every test run.
func needRoot(t *testing.T) {
	t.Helper()
	needRootAnd(t, "iperf3", "ethtool")
}

// needRootAnd skips a test without root, ip, ping or one of tools, unless
// ZSWITCH_REQUIRE_QEMU=1 (CI, which installs every tool) fails it.
func needRootAnd(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip", "ping"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
		t.Fatalf("needs %s (ZSWITCH_REQUIRE_QEMU=1)", strings.Join(missing, ", "))
	}
	t.Skipf("needs %s", strings.Join(missing, ", "))
}

// sh runs a command and fails the test with its output if it fails.
func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a network namespace zsw-ROLE-RANDOM that is deleted
// when the test ends, whatever happens. IPv6 is off unless asked for, so
// the kernel sends nothing the test did not.
func newNetns(t *testing.T, role string, ipv6 bool) string {
	t.Helper()
	return netnsNamed(t, "zsw", role, ipv6)
}

// netnsNamed is newNetns with another prefix than zsw.
func netnsNamed(t *testing.T, prefix, role string, ipv6 bool) string {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	name := prefix + "-" + role + "-" + hex.EncodeToString(b[:])
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	if !ipv6 {
		sh(t, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	return name
}

// linkStats reads an interface's kernel packet counters.
func linkStats(t *testing.T, ns, dev string) (rx, tx uint64) {
	t.Helper()
	var links []struct {
		Stats64 struct {
			RX struct{ Packets uint64 } `json:"rx"`
			TX struct{ Packets uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(sh(t, "ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip -s -j link: %v", err)
	}
	return links[0].Stats64.RX.Packets, links[0].Stats64.TX.Packets
}

// portTotals parses the "port totals" lines zswitch logs at exit.
func portTotals(log string) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="port totals"`) {
			continue
		}
		m := map[string]uint64{}
		var port string
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			if k == "port" {
				port = v
			} else if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				m[k] = n
			}
		}
		out[port] = m
	}
	return out
}

// TestHostLab replaces net-setup.sh and a Linux bridge: two hosts behind
// veth pairs that zswitch attaches with packet ports, a third on a TAP that
// zswitch creates, and a QEMU guest on a stream port. Each host is a network
// namespace; zswitch runs in a namespace of its own. Everyone pings
// everyone over IPv4 and IPv6, iperf3 runs TCP between two hosts, and the
// switch's counters match the kernel's.
func TestHostLab(t *testing.T) {
	needRoot(t)
	sw := newNetns(t, "sw", false)
	h1, h2, h3 := newNetns(t, "h1", true), newNetns(t, "h2", true), newNetns(t, "h3", true)
	for i, h := range []string{h1, h2} {
		v := fmt.Sprintf("v%d", i+1)
		sh(t, "ip", "-n", sw, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h)
		sh(t, "ip", "-n", sw, "link", "set", v, "up")
	}
	dir := t.TempDir()
	bin := buildZswitch(t)
	z := exec.Command("ip", "netns", "exec", sw, bin, "run", "--log-level", "debug",
		"--port", "packet:v1,name=h1", "--port", "packet:v2,name=h2", "--port", "tap:zt3,name=h3",
		"--port", "stream-listen:unix:"+dir+"/z.sock,name=qemu")
	zlog := startProcess(t, z)
	waitFile(t, dir+"/z.sock")

	// The TAP zswitch made moves into h3, as a Zephyr host's zeth would
	// live in the host's namespace; zswitch keeps its file descriptor.
	sh(t, "ip", "-n", sw, "link", "set", "zt3", "netns", h3)
	for i, hd := range [][2]string{{h1, "eth0"}, {h2, "eth0"}, {h3, "zt3"}} {
		h, dev := hd[0], hd[1]
		sh(t, "ip", "-n", h, "addr", "add", fmt.Sprintf("10.80.0.%d/24", i+1), "dev", dev)
		sh(t, "ip", "-n", h, "addr", "add", fmt.Sprintf("fd80::%d/64", i+1), "dev", dev, "nodad")
		sh(t, "ip", "-n", h, "link", "set", dev, "up")
	}
	// A host stack on a veth hands over TCP super-frames unless told not
	// to, as it would to a real NIC. Checksum offload stays on: the packet
	// port completes those checksums itself.
	for _, h := range []string{h1, h2} {
		sh(t, "ip", "netns", "exec", h, "ethtool", "-K", "eth0", "tso", "off", "gso", "off")
	}

	var guest *qemutest.Guest
	if qemutest.Available() == nil || os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
		guest = qemutest.Boot(t, qemutest.Config{
			Name: "guest", IP: "10.80.0.10/24", IP6: "fd80::10/64",
			NetArgs: []string{"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + dir + "/z.sock",
				"-device", "e1000,netdev=n0,mac=52:54:00:80:00:10"},
		})
	}

	ping := func(t *testing.T, from, addr string) {
		t.Helper()
		args := []string{"ip", "netns", "exec", from, "ping", "-c1", "-W3", addr}
		for try := 0; ; try++ { // the first may be spent on ARP/ND
			if exec.Command(args[0], args[1:]...).Run() == nil {
				return
			}
			if try == 2 {
				t.Errorf("%s cannot reach %s", from, addr)
				return
			}
		}
	}
	t.Run("ping", func(t *testing.T) {
		hosts := []string{h1, h2, h3}
		for i, from := range hosts {
			for j := range hosts {
				if i != j {
					ping(t, from, fmt.Sprintf("10.80.0.%d", j+1))
					ping(t, from, fmt.Sprintf("fd80::%d", j+1))
				}
			}
			if guest != nil {
				ping(t, from, "10.80.0.10")
			}
		}
		if guest != nil {
			for _, a := range []string{"10.80.0.1", "fd80::2", "10.80.0.3"} {
				if err := guest.Ping(a, 1); err != nil {
					t.Error(err)
				}
			}
		}
	})
	t.Run("iperf3", func(t *testing.T) {
		srv := exec.Command("ip", "netns", "exec", h2, "iperf3", "-s", "-1", "-B", "10.80.0.2")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer srv.Process.Kill()
		var res struct {
			End struct {
				SumReceived struct {
					Bytes         uint64  `json:"bytes"`
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		var out []byte
		for try := 0; ; try++ { // until the server listens
			out, _ = exec.Command("ip", "netns", "exec", h1, "iperf3", "-c", "10.80.0.2", "-t", "3", "-J", "--connect-timeout", "3000").Output()
			res.Error = ""
			if err := json.Unmarshal(out, &res); err == nil && res.Error == "" {
				break
			}
			if try == 30 {
				t.Fatalf("iperf3:\n%s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if res.End.SumReceived.Bytes == 0 {
			t.Fatalf("iperf3 moved nothing:\n%s", out)
		}
		t.Logf("iperf3 TCP h1→h2 through two packet ports: %.0f Mbit/s, %d bytes", res.End.SumReceived.BitsPerSecond/1e6, res.End.SumReceived.Bytes)
	})

	// Quiesce: hosts stop sending, then zswitch stops and reports totals.
	if guest != nil {
		guest.Kill()
	}
	for _, hd := range [][2]string{{h1, "eth0"}, {h2, "eth0"}, {h3, "zt3"}} {
		sh(t, "ip", "-n", hd[0], "link", "set", hd[1], "down")
	}
	time.Sleep(300 * time.Millisecond)
	hostTx := map[string]uint64{}
	for _, hd := range [][3]string{{h1, "eth0", "h1"}, {h2, "eth0", "h2"}, {h3, "zt3", "h3"}} {
		_, hostTx[hd[2]] = linkStats(t, hd[0], hd[1])
	}
	z.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- z.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("zswitch exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("zswitch did not exit within 30 s of SIGTERM")
	}
	totals := portTotals(zlog.String())
	t.Run("counters", func(t *testing.T) {
		// Every frame a host sent reached zswitch or was counted there.
		for port, tx := range hostTx {
			m, ok := totals[port]
			if !ok {
				t.Fatalf("no totals for port %s", port)
			}
			if got := m["rx_frames"] + m["rx_invalid"]; got != tx {
				t.Errorf("port %s: zswitch received %d frames (+%d invalid), the host sent %d", port, m["rx_frames"], m["rx_invalid"], tx)
			}
			t.Logf("port %s: host sent %d frames, zswitch received %d", port, tx, m["rx_frames"])
		}
	})
}
