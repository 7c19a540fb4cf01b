package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/internal/qemutest"
)

// TestSLIPIPModeQEMU runs a SLIP port in IP mode against the real thing:
// Linux's slip driver in a QEMU guest, on the guest's second serial port,
// which speaks raw IPv4 in SLIP and neither ARP nor Ethernet. zswitch
// (in a namespace of its own) switches it with a TAP that a host namespace
// owns; the guest and the host ping each other, the port answering the
// host's ARP for the guest and resolving the host for the guest.
func TestSLIPIPModeQEMU(t *testing.T) {
	needRoot(t)
	if err := qemutest.Available(); err != nil && os.Getenv("ZSWITCH_REQUIRE_QEMU") != "1" {
		t.Skip(err)
	}
	start := time.Now()
	dir := t.TempDir()
	sw, host := newNetns(t, "sw", false), newNetns(t, "h", false)

	// busybox has no slattach: a static helper attaches N_SLIP to ttyS1.
	helper := filepath.Join(dir, "slattach")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", helper, "./testdata/slattach")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build slattach: %v\n%s", err, out)
	}

	bin := buildZswitch(t)
	sock := filepath.Join(dir, "slip.sock")
	z := exec.Command("ip", "netns", "exec", sw, bin, "run", "--log-level", "debug",
		"--port", "slip-listen:unix:"+sock+",mode=ip,name=slip", "--port", "tap:zs0,name=host")
	zlog := startProcess(t, z)
	waitFile(t, sock)
	sh(t, "ip", "-n", sw, "link", "set", "zs0", "netns", host)
	sh(t, "ip", "-n", host, "addr", "add", "10.82.0.1/24", "dev", "zs0")
	sh(t, "ip", "-n", host, "link", "set", "zs0", "up")

	// ttyS0 is the harness's console (-serial stdio); this is ttyS1.
	g := qemutest.Boot(t, qemutest.Config{
		Name:      "slip-ip",
		Modules:   []string{"slhc", "slip"},
		Files:     map[string]string{"/bin/slattach": helper},
		ExtraArgs: []string{"-serial", "unix:" + sock},
	})
	booted := time.Now()
	out, code, err := g.Run("slattach /dev/ttyS1 >/tmp/slattach.log 2>&1 & "+
		"i=0; while [ ! -e /sys/class/net/sl0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "+
		"cat /tmp/slattach.log; ip addr add 10.82.0.2/24 dev sl0 && ip link set sl0 up && ip -o link show sl0", time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("attach SLIP: exit %d, %v\n%s", code, err, out)
	}
	t.Logf("guest: %s", strings.TrimSpace(out))

	// The guest first: the port learns 10.82.0.2 from its packets and
	// resolves 10.82.0.1 with ARP on the segment.
	if err := g.Ping("10.82.0.1", 2); err != nil {
		t.Fatal(err)
	}
	// ping pings from the host, three tries: the first may be spent on ARP.
	ping := func(args ...string) {
		t.Helper()
		cmd := append([]string{"ip", "netns", "exec", host, "ping", "-c1", "-W3"}, args...)
		var out []byte
		var err error
		for range 3 {
			if out, err = exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err == nil {
				return
			}
		}
		t.Errorf("host: ping %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// The host: its ARP for 10.82.0.2 is answered by the port.
	sh(t, "ip", "-n", host, "neigh", "flush", "dev", "zs0")
	ping("10.82.0.2")
	// Bigger packets both ways (slip's MTU is 296), with SLIP's special
	// bytes in them (ping's pattern runs through every byte value).
	ping("-s", "260", "10.82.0.2")
	if out, code, err := g.Run("ping -c2 -W3 -s 260 10.82.0.1", time.Minute); err != nil || code != 0 {
		t.Errorf("guest: 260-byte pings: exit %d, %v\n%s", code, err, out)
	}
	neigh := sh(t, "ip", "-n", host, "neigh", "show", "10.82.0.2", "dev", "zs0")
	t.Logf("host neighbour entry: %s", strings.TrimSpace(neigh))

	g.Kill()
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
	log := zlog.String()
	for port, m := range portTotals(log) {
		t.Logf("port %s: rx %d tx %d rx_invalid %d", port, m["rx_frames"], m["tx_frames"], m["rx_invalid"])
	}
	if !strings.Contains(log, "device address learned") || !strings.Contains(log, "10.82.0.2") {
		t.Error("zswitch never logged learning the guest's address")
	}
	t.Logf("TestSLIPIPModeQEMU: boot %v, pings %v, total %v",
		booted.Sub(start).Round(time.Millisecond), time.Since(booted).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
