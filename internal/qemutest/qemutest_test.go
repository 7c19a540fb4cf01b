package qemutest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRun checks the console protocol, Files and Modules on a guest
// without NICs.
func TestRun(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(data, []byte("#!/bin/sh\necho tool ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	g := Boot(t, Config{Name: "run", Modules: []string{"slip"},
		Files: map[string]string{"/opt/zs/tool": data}})
	cases := []struct {
		cmd  string
		out  string
		exit int
	}{
		{"echo hello", "hello", 0},
		{"printf 'a\\nb'", "a\nb", 0},
		{"exit_code() { return 3; }; exit_code", "", 3},
		{"false", "", 1},
		{"echo err >&2; true", "err", 0},
		{"", "", 0},
		{"for i in 1 2; do\necho $i\ndone", "1\n2", 0},
		{"cat", "", 0}, // stdin is /dev/null, so this must not eat later input
		{"hostname", "run", 0},
		{"ls -1 /lib/modules", "8021q.ko\ne1000.ko\ngarp.ko\nllc.ko\nmrp.ko\nslhc.ko\nslip.ko\nstp.ko", 0},
		{"no_such_command", "sh: no_such_command: not found", 127},
		{"/opt/zs/tool", "tool ran", 0},
		{"cut -d' ' -f1 /proc/modules | sort", "e1000\nslhc\nslip", 0},
	}
	for _, c := range cases {
		out, exit, err := g.Run(c.cmd, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if out != c.out || exit != c.exit {
			t.Errorf("Run(%q) = %q, %d; want %q, %d", c.cmd, out, exit, c.out, c.exit)
		}
	}
	// Shell state persists between calls.
	g.Run("cd /tmp; X=42", 10*time.Second)
	if out, _, _ := g.Run("echo $PWD $X", 10*time.Second); out != "/tmp 42" {
		t.Errorf("state not kept: %q", out)
	}
	// A timeout interrupts the command and leaves the console usable.
	if _, _, err := g.Run("sleep 30", 2*time.Second); err == nil {
		t.Error("sleep 30 with a 2s timeout: no error")
	}
	if out, _, err := g.Run("echo still-there", 10*time.Second); err != nil || out != "still-there" {
		t.Errorf("after timeout: %q, %v", out, err)
	}
}

// TestPair connects two guests back to back with QEMU's legacy socket
// netdev (no zswitch) and pings across in both directions and families.
func TestPair(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	nic := func(backend, mac string) []string {
		return []string{"-netdev", "socket,id=n0," + backend, "-device", "e1000,netdev=n0,mac=" + mac}
	}
	a := Boot(t, Config{Name: "a", IP: "10.77.0.1/24", IP6: "fd77::1/64",
		NetArgs: nic(fmt.Sprintf("listen=127.0.0.1:%d", port), "52:54:00:77:00:01")})
	b := Boot(t, Config{Name: "b", IP: "10.77.0.2/24", IP6: "fd77::2/64",
		NetArgs: nic(fmt.Sprintf("connect=127.0.0.1:%d", port), "52:54:00:77:00:02")})

	pingAll := func(t *testing.T) {
		t.Helper()
		for _, p := range []struct {
			g    *Guest
			addr string
		}{{a, "10.77.0.2"}, {a, "fd77::2"}, {b, "10.77.0.1"}, {b, "fd77::1"}} {
			start := time.Now()
			if err := p.g.Ping(p.addr, 2); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s -> %s ok in %v", p.g.Name(), p.addr, time.Since(start).Round(time.Millisecond))
		}
	}
	t.Run("ping", pingAll)

	t.Run("kill-restart", func(t *testing.T) {
		b.Kill()
		if _, _, err := b.Run("true", 5*time.Second); err == nil {
			t.Fatal("Run on a killed guest: no error")
		}
		// A's QEMU accepts the new connection on its listening socket.
		b.Restart(t)
		if out, _, _ := b.Run("ip -6 addr show dev eth0", 10*time.Second); !strings.Contains(out, "fd77::2") {
			t.Fatalf("restarted guest lacks its address:\n%s", out)
		}
		pingAll(t)
	})
}
