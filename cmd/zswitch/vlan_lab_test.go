package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/zswitch/zswitch/control"
	"github.com/zswitch/zswitch/internal/qemutest"
)

// This file holds TestVLANLab and the lab helpers it shares with
// TestPortSecurityLab: hosts are network namespaces behind veths that
// zswitch, in a namespace of its own, attaches with packet ports. Nothing
// is configured in the root namespace.

// A labHost is a namespace with one interface, eth0, the peer of the veth
// swIf in the switch's namespace.
type labHost struct {
	role string
	ns   string
	swIf string
	mac  net.HardwareAddr
	ip   string // IPv4 address, without the prefix length
}

// labAddHost creates a host namespace joined to sw by a veth (swIf in sw,
// eth0 in the host) with the given MAC and IPv4 address (CIDR); ip6 (CIDR)
// also turns IPv6 on.
func labAddHost(t *testing.T, prefix, sw, role, swIf, mac, ip4, ip6 string) *labHost {
	t.Helper()
	ns := netnsNamed(t, prefix, role, ip6 != "")
	sh(t, "ip", "-n", sw, "link", "add", "name", swIf, "type", "veth", "peer", "name", "eth0", "netns", ns)
	sh(t, "ip", "-n", sw, "link", "set", swIf, "up")
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "address", mac)
	if ip4 != "" {
		sh(t, "ip", "-n", ns, "addr", "add", ip4, "dev", "eth0")
	}
	if ip6 != "" {
		sh(t, "ip", "-n", ns, "addr", "add", ip6, "dev", "eth0", "nodad")
	}
	sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	ip, _, _ := strings.Cut(ip4, "/")
	return &labHost{role: role, ns: ns, swIf: swIf, mac: hw, ip: ip}
}

// txPackets is the number of frames the host's kernel sent on eth0.
func (h *labHost) txPackets(t *testing.T) uint64 {
	t.Helper()
	_, tx := linkStats(t, h.ns, "eth0")
	return tx
}

// waitUnresolved waits until the host's kernel gave up resolving ip, which
// goes on for seconds after a ping to an unreachable neighbour ended: until
// then it may still send ARP requests, and it holds the packets waiting for
// the answer (which a neighbour entry added meanwhile would release).
func (h *labHost) waitUnresolved(t *testing.T, ip string) {
	t.Helper()
	labWait(t, 30*time.Second, h.role+" never gave up resolving "+ip, func() bool {
		out, err := exec.Command("ip", "-n", h.ns, "neigh", "show", "to", ip).CombinedOutput()
		return err == nil && !strings.Contains(string(out), "INCOMPLETE")
	})
}

// ping pings addr from the host, three tries of one echo request (the
// first may be spent on ARP/ND), and reports whether a reply came.
func (h *labHost) ping(addr string) bool {
	for range 3 {
		if exec.Command("ip", "netns", "exec", h.ns, "ping", "-c1", "-W3", addr).Run() == nil {
			return true
		}
	}
	return false
}

// labWait polls ok every 20 ms until it holds, failing the test after
// timeout.
func labWait(t *testing.T, timeout time.Duration, msg string, ok func() bool) {
	t.Helper()
	for start := time.Now(); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > timeout {
			t.Fatalf("%s (waited %v)", msg, timeout)
		}
	}
}

// A labSwitch is the real zswitch binary running in the namespace ns.
type labSwitch struct {
	ns, bin, ctl string
	cmd          *exec.Cmd
	log          *syncBuffer
	c            *control.Client
	exited       chan error
}

// startLabSwitch runs `zswitch run` in ns with a control socket in dir and
// the given arguments; the test's end kills it, and logs its output if the
// test failed.
func startLabSwitch(t *testing.T, ns, bin, dir string, args ...string) *labSwitch {
	t.Helper()
	s := &labSwitch{ns: ns, bin: bin, ctl: filepath.Join(dir, "ctl"), exited: make(chan error, 1)}
	s.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin, "run", "--log-level", "debug", "--control", s.ctl}, args...)...)
	s.log = startProcess(t, s.cmd)
	go func() { s.exited <- s.cmd.Wait() }()
	labWait(t, 60*time.Second, "zswitch did not start", func() bool {
		select {
		case err := <-s.exited:
			t.Fatalf("zswitch exited at start: %v\n%s", err, s.log.String())
		default:
		}
		return strings.Contains(s.log.String(), "zswitch running")
	})
	s.c = control.NewClient(s.ctl)
	return s
}

// port reads a port's counters through the control API.
func (s *labSwitch) port(t *testing.T, name string) control.PortInfo {
	t.Helper()
	p, err := s.c.Port(name)
	if err != nil {
		t.Fatalf("ctl port %s: %v", name, err)
	}
	return p
}

// stop ends zswitch with SIGTERM and checks that it exits 0.
func (s *labSwitch) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("zswitch exit: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("zswitch did not exit within 60 s of SIGTERM")
	}
}

// A labCapture is `zswitch capture PORT -w FILE` running until stopped.
type labCapture struct {
	cmd    *exec.Cmd
	file   string
	stderr *syncBuffer
}

// startCapture starts capturing port into dir/name and waits until the
// switch lists one more running capture.
func (s *labSwitch) startCapture(t *testing.T, port, file string) *labCapture {
	t.Helper()
	before, err := s.c.Captures()
	if err != nil {
		t.Fatal(err)
	}
	lc := &labCapture{file: file, stderr: &syncBuffer{}}
	lc.cmd = exec.Command(s.bin, "capture", "--control", s.ctl, "-q", port, "-w", file)
	lc.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	lc.cmd.Stdout, lc.cmd.Stderr = io.Discard, lc.stderr
	if err := lc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lc.cmd.Process.Kill() })
	labWait(t, 30*time.Second, "capture of "+port+" never started", func() bool {
		cs, err := s.c.Captures()
		return err == nil && len(cs) == len(before)+1
	})
	return lc
}

// stop ends the capture as Ctrl-C would and checks it lost nothing.
func (lc *labCapture) stop(t *testing.T) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let the last frames reach the file
	lc.cmd.Process.Signal(syscall.SIGINT)
	if err := waitTimeout(lc.cmd, 30*time.Second); err != nil {
		t.Fatalf("capture after SIGINT: %v\n%s", err, lc.stderr.String())
	}
	if s := lc.stderr.String(); !strings.Contains(s, ", 0 dropped") {
		t.Fatalf("capture lost frames (the checks below need them all): %s", s)
	}
}

// A capRecord is one captured frame as tshark reads it.
type capRecord struct {
	port     string // the pcapng interface: the port's name
	out      bool   // sent by zswitch to the port (else received from it)
	src, dst string
	vlan     string // 802.1Q VID, "" when untagged
	ipSrc    string // IPv4 or IPv6 source, if any
	icmp     string // ICMP or ICMPv6 type, if any
}

// readCapture reads a pcapng file with tshark.
func readCapture(t *testing.T, tshark, file string) []capRecord {
	t.Helper()
	out, err := tsharkRead(tshark, "-r", file, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f",
		"-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "eth.src", "-e", "eth.dst",
		"-e", "vlan.id", "-e", "ip.src", "-e", "ipv6.src", "-e", "icmp.type", "-e", "icmpv6.type")
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var recs []capRecord
	for l := range strings.SplitSeq(string(out), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) != 9 {
			t.Fatalf("tshark line %q: want 9 fields", l)
		}
		dir, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 32)
		if err != nil || dir&3 == 0 {
			t.Fatalf("tshark line %q: no direction", l)
		}
		r := capRecord{port: f[0], out: dir&3 == 2, src: f[2], dst: f[3], vlan: f[4], ipSrc: f[5] + f[6], icmp: f[7] + f[8]}
		recs = append(recs, r)
	}
	return recs
}

// labFrame builds an Ethernet frame, 802.1Q-tagged with vid unless 0,
// padded to the 60-byte minimum.
func labFrame(dst, src net.HardwareAddr, vid, etype uint16, payload []byte) []byte {
	f := make([]byte, 0, 64+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	if vid != 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vid)
	}
	f = binary.BigEndian.AppendUint16(f, etype)
	f = append(f, payload...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// arpRequest is the payload of an ARP request for target from sender.
func arpRequest(sha net.HardwareAddr, spa, tpa string) []byte {
	p := []byte{0, 1, 8, 0, 6, 4, 0, 1}
	p = append(p, sha...)
	p = append(p, net.ParseIP(spa).To4()...)
	p = append(p, 0, 0, 0, 0, 0, 0)
	return append(p, net.ParseIP(tpa).To4()...)
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// rawSend transmits frames on ifname of namespace ns through an AF_PACKET
// socket, as a host's misbehaving or spoofing program would.
func rawSend(t *testing.T, ns, ifname string, frames ...[]byte) {
	t.Helper()
	var fd int
	inNetns(t, ns, func() (err error) {
		fd, err = rawSocket(ifname, false)
		return err
	})
	defer unix.Close(fd)
	for _, f := range frames {
		if _, err := unix.Write(fd, f); err != nil {
			t.Fatalf("raw send in %s: %v", ns, err)
		}
	}
}

// A sniffer counts the frames a host's interface receives, by source MAC.
type sniffer struct {
	fd     int
	mu     sync.Mutex
	counts map[string]int
	quit   chan struct{}
	done   chan struct{}
}

// startSniffer opens a raw socket on ifname in ns and counts every frame
// it receives (not those it sends) until stopped.
func startSniffer(t *testing.T, ns, ifname string) *sniffer {
	t.Helper()
	s := &sniffer{counts: map[string]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	inNetns(t, ns, func() (err error) {
		s.fd, err = rawSocket(ifname, false)
		return err
	})
	unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			select {
			case <-s.quit:
				return
			default:
			}
			n, from, err := unix.Recvfrom(s.fd, buf, 0)
			if err != nil || n < 14 {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			s.mu.Lock()
			s.counts[net.HardwareAddr(buf[6:12]).String()]++
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *sniffer) stop() {
	select {
	case <-s.quit:
		return
	default:
	}
	close(s.quit)
	<-s.done
	unix.Close(s.fd)
}

// from returns how many frames from mac the sniffer has seen.
func (s *sniffer) from(mac net.HardwareAddr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[mac.String()]
}

// runInNetns runs f on a thread that entered namespace ns; sockets f
// opens stay in ns. The thread goes back to its namespace afterwards
// rather than dying with its goroutine: a thread's exit would SIGKILL the
// children it forked with Pdeathsig, such as a QEMU guest.
func runInNetns(ns string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else the thread, stuck in ns, dies with the goroutine
		done <- err
	}()
	return <-done
}

// inNetns is runInNetns failing the test on error.
func inNetns(t *testing.T, ns string, f func() error) {
	t.Helper()
	if err := runInNetns(ns, f); err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

// dialInNetns opens a connection from inside namespace ns.
func dialInNetns(ns, network, addr string) (c net.Conn, err error) {
	err = runInNetns(ns, func() error {
		c, err = net.DialTimeout(network, addr, 10*time.Second)
		return err
	})
	return c, err
}

// scrapeMetrics reads zswitch's /metrics at addr inside namespace ns.
func scrapeMetrics(t *testing.T, ns, addr string) string {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(_ context.Context, network, a string) (net.Conn, error) {
			return dialInNetns(ns, network, a)
		},
	}}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape metrics: %v %s", err, resp.Status)
	}
	return string(b)
}

var promLabelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// promValue returns the value of the series of metric name whose labels
// include labels, and whether exactly one such series exists.
func promValue(body, name string, labels map[string]string) (float64, bool) {
	var v float64
	n := 0
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, ls, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		got := map[string]string{}
		for _, m := range promLabelRE.FindAllStringSubmatch(ls, -1) {
			got[m[1]] = m[2]
		}
		match := true
		for k, want := range labels {
			if got[k] != want {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			return 0, false
		}
		v = f
		n++
	}
	return v, n == 1
}

// TestVLANLab is net-tools' zeth-vlan.conf with zswitch (README, "VLANs"):
// a QEMU guest with the kernel's vlan.100 and vlan.200 interfaces on a
// trunk port (trunk=100+200), and hosts on access ports of VLAN 100 and
// 200 that need no VLAN support of their own. Each host reaches the
// guest's interface of its own VLAN over IPv4 and IPv6; the trunk carries
// both VLANs tagged (checked with tshark on `zswitch capture`); a host on
// VLAN 200 that claims an address of VLAN 100 cannot reach VLAN 100, not
// even with frames it tags for VLAN 100 itself, which are counted as
// vlan drops.
func TestVLANLab(t *testing.T) {
	needRootAnd(t)
	tshark := needTshark(t)
	if err := qemutest.Available(); err != nil && testing.Short() {
		t.Skip(err)
	}
	const pre = "zsvl"
	sw := netnsNamed(t, pre, "sw", false)
	h100 := labAddHost(t, pre, sw, "h100", "zsvl-h100", "02:7a:64:00:00:02", "198.51.100.2/24", "2001:db8:100::2/64")
	h200 := labAddHost(t, pre, sw, "h200", "zsvl-h200", "02:7a:c8:00:00:02", "203.0.113.2/24", "2001:db8:200::2/64")
	// The intruder sits on VLAN 200 but claims an address of VLAN 100.
	h3 := labAddHost(t, pre, sw, "h3", "zsvl-h3", "02:7a:c8:00:00:03", "198.51.100.3/24", "")

	dir := t.TempDir()
	sock := filepath.Join(dir, "zsvl-trunk.sock")
	s := startLabSwitch(t, sw, buildZswitch(t), dir,
		"--port", "stream-listen:unix:"+sock+",name=trunk,trunk=100+200",
		"--port", "packet:"+h100.swIf+",name=h100,vlan=100",
		"--port", "packet:"+h200.swIf+",name=h200,vlan=200",
		"--port", "packet:"+h3.swIf+",name=h3,vlan=200")
	waitFile(t, sock)

	const guestMAC = "52:54:00:7a:01:00"
	guest := qemutest.Boot(t, qemutest.Config{
		Name:        "zsvl-guest",
		Modules:     []string{"8021q"},
		BootTimeout: 5 * time.Minute,
		NetArgs: []string{"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock,
			"-device", "e1000,netdev=n0,mac=" + guestMAC},
	})
	// The Zephyr side of zeth-vlan.conf: VLAN interfaces on one NIC.
	setup := "ip link add link eth0 name vlan.100 type vlan id 100 && " +
		"ip link add link eth0 name vlan.200 type vlan id 200 && " +
		"ip addr add 198.51.100.1/24 dev vlan.100 && ip addr add 2001:db8:100::1/64 dev vlan.100 && " +
		"ip addr add 203.0.113.1/24 dev vlan.200 && ip addr add 2001:db8:200::1/64 dev vlan.200 && " +
		"ip link set vlan.100 up && ip link set vlan.200 up && cat /proc/net/vlan/config"
	if out, code, err := guest.Run(setup, 2*time.Minute); err != nil || code != 0 ||
		!strings.Contains(out, "vlan.100") || !strings.Contains(out, "vlan.200") {
		t.Fatalf("guest VLAN setup: exit %d, %v\n%s", code, err, out)
	}

	t.Run("ping", func(t *testing.T) {
		trunkCap := s.startCapture(t, "trunk", filepath.Join(dir, "trunk.pcapng"))
		for _, c := range []struct {
			h    *labHost
			addr string
		}{
			{h100, "198.51.100.1"}, {h100, "2001:db8:100::1"},
			{h200, "203.0.113.1"}, {h200, "2001:db8:200::1"},
		} {
			if !c.h.ping(c.addr) {
				t.Errorf("%s cannot ping the guest's %s", c.h.role, c.addr)
			}
		}
		for _, a := range []string{"198.51.100.2", "2001:db8:100::2", "203.0.113.2", "2001:db8:200::2"} {
			if err := guest.Ping(a, 1); err != nil {
				t.Error(err)
			}
		}
		trunkCap.stop(t)
		if t.Failed() {
			return
		}

		// tshark sees the trunk carry each host's traffic tagged with the
		// host's VLAN, both ways, and nothing untagged towards the guest.
		tags := map[string]map[string]int{} // VID -> "in"/"out" -> ICMP echo frames
		hostVID := map[string]string{h100.mac.String(): "100", h200.mac.String(): "200"}
		for _, r := range readCapture(t, tshark, trunkCap.file) {
			if r.port != "trunk/1" {
				t.Errorf("frame on interface %q in a capture of trunk", r.port)
			}
			if r.out && r.vlan != "100" && r.vlan != "200" {
				t.Errorf("frame to the guest with VLAN %q (want 100 or 200): %+v", r.vlan, r)
			}
			peer := r.src
			if !r.out {
				peer = r.dst
			}
			if want, ok := hostVID[peer]; ok && r.vlan != want {
				t.Errorf("frame of host %s on the trunk tagged %q, want %s: %+v", peer, r.vlan, want, r)
			}
			if r.icmp == "8" || r.icmp == "0" || r.icmp == "128" || r.icmp == "129" {
				dir := "in"
				if r.out {
					dir = "out"
				}
				if tags[r.vlan] == nil {
					tags[r.vlan] = map[string]int{}
				}
				tags[r.vlan][dir]++
			}
		}
		for _, vid := range []string{"100", "200"} {
			if tags[vid]["in"] == 0 || tags[vid]["out"] == 0 {
				t.Errorf("tshark: no ICMP echo tagged %s in both directions on the trunk: %v", vid, tags)
			}
		}
		if len(tags) != 2 {
			t.Errorf("tshark: ICMP echo on the trunk with VLAN IDs %v, want only 100 and 200", tags)
		}
		t.Logf("ICMP echo frames on the trunk by VLAN and direction: %v", tags)

		// One guest MAC, two stations: learning is per VLAN. (The guest's
		// eth0 itself speaks untagged, in the trunk's native VLAN 1.)
		fdb, err := s.c.FDB()
		if err != nil {
			t.Fatal(err)
		}
		vids := map[uint16]string{}
		for _, e := range fdb {
			if e.MAC.String() == guestMAC {
				vids[e.VLAN] = e.Port
			}
		}
		delete(vids, 1)
		if len(vids) != 2 || vids[100] != "trunk/1" || vids[200] != "trunk/1" {
			t.Errorf("fdb entries of the guest's MAC: %v, want VLAN 100 and 200 (and 1) on trunk/1", vids)
		}
	})

	t.Run("trunk-filter", func(t *testing.T) {
		// The trunk carries 100 and 200 only: what the guest tags for
		// VLAN 300 is dropped at the trunk, every frame counted as vlan.
		p := s.port(t, "trunk/1")
		out, code, err := guest.Run("ip link add link eth0 name vlan.300 type vlan id 300 && "+
			"echo 1 >/proc/sys/net/ipv6/conf/vlan.300/disable_ipv6 && "+
			"ip addr add 192.0.2.1/24 dev vlan.300 && ip link set vlan.300 up && "+
			"arping -c 3 -w 5 -I vlan.300 192.0.2.2 >/dev/null; cat /sys/class/net/vlan.300/statistics/tx_packets", time.Minute)
		if err != nil || code != 0 {
			t.Fatalf("guest vlan.300: exit %d, %v\n%s", code, err, out)
		}
		sent, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if err != nil || sent < 3 {
			t.Fatalf("guest vlan.300 sent %q frames, want at least arping's 3", out)
		}
		var d uint64
		labWait(t, 30*time.Second, "no vlan drops on the trunk", func() bool {
			d = s.port(t, "trunk/1").DropsIn["vlan"] - p.DropsIn["vlan"]
			return d >= sent
		})
		time.Sleep(200 * time.Millisecond)
		if d = s.port(t, "trunk/1").DropsIn["vlan"] - p.DropsIn["vlan"]; d != sent {
			t.Errorf("trunk/1: %d vlan drops, want the %d frames the guest sent on vlan.300", d, sent)
		}
		t.Logf("the guest sent %d frames on vlan.300: %d vlan drops at the trunk", sent, d)
		guest.Run("ip link del vlan.300", time.Minute)
	})

	t.Run("isolation", func(t *testing.T) {
		// h3 (VLAN 200) looks for h100 (VLAN 100) as if they shared a
		// segment, then tries VLAN hopping with frames it tags for VLAN 100.
		allCap := s.startCapture(t, "all", filepath.Join(dir, "all.pcapng"))
		sniff100 := startSniffer(t, h100.ns, "eth0")
		p3 := s.port(t, "h3")
		tx3 := h3.txPackets(t)
		if exec.Command("ip", "netns", "exec", h3.ns, "ping", "-c3", "-i0.5", "-W1", h100.ip).Run() == nil {
			t.Errorf("h3 on VLAN 200 reached %s on VLAN 100", h100.ip)
		}
		const hops = 5
		hop := labFrame(broadcastMAC, h3.mac, 100, 0x0806, arpRequest(h3.mac, h3.ip, h100.ip))
		for range hops {
			rawSend(t, h3.ns, "eth0", hop)
		}
		// The kernel goes on resolving after ping gives up; count h3's
		// frames once it has given up too.
		h3.waitUnresolved(t, h100.ip)
		sent := h3.txPackets(t) - tx3
		var now control.PortInfo
		labWait(t, 30*time.Second, "zswitch did not receive what h3 sent", func() bool {
			now = s.port(t, "h3")
			return now.RxFrames-p3.RxFrames >= sent
		})
		allCap.stop(t)
		sniff100.stop()

		rx := now.RxFrames - p3.RxFrames
		vlanDrops := now.DropsIn["vlan"] - p3.DropsIn["vlan"]
		fwd := now.Forwarded - p3.Forwarded
		if rx != sent || vlanDrops != hops || fwd != sent-hops {
			t.Errorf("port h3: received %d frames (h3 sent %d), %d vlan drops (want the %d tagged for VLAN 100), forwarded %d (want %d)",
				rx, sent, vlanDrops, hops, fwd, sent-hops)
		}
		if sent < hops+1 {
			t.Errorf("h3 sent %d frames; want its ARP requests plus %d raw ones", sent, hops)
		}
		if n := sniff100.from(h3.mac); n != 0 {
			t.Errorf("h100's eth0 received %d frames from h3", n)
		}
		// zswitch's own view: h3's frames go to VLAN 200 only, tagged 200
		// on the trunk.
		count := map[string]int{}
		for _, r := range readCapture(t, tshark, allCap.file) {
			if r.src != h3.mac.String() {
				continue
			}
			key := r.port + " in"
			if r.out {
				key = r.port + " out vlan=" + r.vlan
			}
			count[key]++
		}
		want := map[string]int{
			"h3 in":                int(sent),
			"h200 out vlan=":       int(sent - hops),
			"trunk/1 out vlan=200": int(sent - hops),
		}
		if fmt.Sprint(count) != fmt.Sprint(want) {
			t.Errorf("captured frames from h3 by port: %v, want %v", count, want)
		}
		fdb, err := s.c.FDB()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range fdb {
			if e.MAC.String() == h3.mac.String() && (e.VLAN != 200 || e.Port != "h3") {
				t.Errorf("h3's MAC learned in VLAN %d on %s", e.VLAN, e.Port)
			}
		}
		t.Logf("h3 sent %d frames: %d vlan drops, %d forwarded; by port: %v", sent, vlanDrops, fwd, count)
	})

	guest.Kill()
	s.stop(t)
}
