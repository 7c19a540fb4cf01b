package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/internal/qemutest"
)

// A labGuest is one QEMU guest of the end-to-end test and the way it
// reaches zswitch.
type labGuest struct {
	name   string
	port   string // zswitch port spec, "" when it shares another guest's port
	netdev string // QEMU -netdev argument
	g      *qemutest.Guest
}

func (lg *labGuest) ip(i int) string  { return fmt.Sprintf("10.79.0.%d", i+1) }
func (lg *labGuest) ip6(i int) string { return fmt.Sprintf("fd79::%d", i+1) }

// TestQEMULab is the core end-to-end test: the real zswitch binary with
// every QEMU-facing port kind, a real QEMU guest behind each, and every
// guest pinging every other one over IPv4 and IPv6. Then guests are killed
// and booted again — one that connects to zswitch, one that zswitch
// connects to — and they are reachable again without restarting zswitch.
func TestQEMULab(t *testing.T) {
	if err := qemutest.Available(); err != nil && testing.Short() {
		t.Skip(err)
	}
	dir := t.TempDir()
	tcpL, tcpC, udpZ, udpQ, mport := freeTCP(t), freeTCP(t), freeUDP(t), freeUDP(t), freeUDP(t)
	guests := []*labGuest{
		{name: "stream-unix", port: "stream-listen:unix:" + dir + "/z.sock,name=lab",
			netdev: "stream,id=n0,server=off,addr.type=unix,addr.path=" + dir + "/z.sock"},
		{name: "socket-connect", port: "stream-listen:tcp:127.0.0.1:" + tcpL + ",name=tcp",
			netdev: "socket,id=n0,connect=127.0.0.1:" + tcpL},
		{name: "stream-server", port: "stream-connect:unix:" + dir + "/q3.sock,name=q3",
			netdev: "stream,id=n0,server=on,addr.type=unix,addr.path=" + dir + "/q3.sock"},
		{name: "socket-listen", port: "stream-connect:tcp:127.0.0.1:" + tcpC + ",name=q4",
			netdev: "socket,id=n0,listen=127.0.0.1:" + tcpC},
		{name: "dgram-udp", port: fmt.Sprintf("dgram:udp:127.0.0.1:%s,remote=127.0.0.1:%s,name=q5", udpZ, udpQ),
			netdev: fmt.Sprintf("dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=%s,remote.type=inet,remote.host=127.0.0.1,remote.port=%s", udpQ, udpZ)},
		// Two guests on one QEMU multicast hub, which zswitch joins as one port.
		{name: "mcast-1", port: "mcast:230.0.0.79:" + mport + ",name=hub",
			netdev: "socket,id=n0,mcast=230.0.0.79:" + mport + ",localaddr=127.0.0.1"},
		{name: "mcast-2", netdev: fmt.Sprintf("dgram,id=n0,remote.type=inet,remote.host=230.0.0.79,remote.port=%s,local.type=inet,local.host=127.0.0.1,local.port=0", mport)},
	}
	cfg := "ports:\n"
	for _, lg := range guests {
		if lg.port != "" {
			cfg += "  - " + lg.port + "\n"
		}
	}
	cfgPath := filepath.Join(dir, "lab.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)

	bin := buildZswitch(t)
	z := exec.Command(bin, "run", "--config", cfgPath, "--log-level", "debug")
	zlog := startProcess(t, z)
	waitFile(t, dir+"/z.sock")

	var wg sync.WaitGroup
	for i, lg := range guests {
		wg.Go(func() {
			lg.g = qemutest.Boot(t, qemutest.Config{
				Name:    lg.name,
				IP:      lg.ip(i) + "/24",
				IP6:     lg.ip6(i) + "/64",
				NetArgs: []string{"-netdev", lg.netdev, "-device", fmt.Sprintf("e1000,netdev=n0,mac=52:54:00:79:00:%02x", i+1)},
			})
		})
	}
	wg.Wait()
	if t.Failed() || t.Skipped() {
		return
	}
	defer func() {
		if t.Failed() {
			t.Logf("zswitch log:\n%s", zlog.String())
		}
	}()

	// meshPing has every guest in from ping every guest in to, IPv4 and
	// IPv6, in one console command per guest.
	meshPing := func(t *testing.T, from, to []int) {
		t.Helper()
		var wg sync.WaitGroup
		for _, i := range from {
			wg.Go(func() {
				// Three tries each: the first may go to ARP/ND for a guest just booted.
				var cmd strings.Builder
				cmd.WriteString("f=0; p() { ping -c1 -W3 $@ >/dev/null || ping -c1 -W3 $@ >/dev/null || ping -c1 -W3 $@ >/dev/null || { echo unreachable $@; f=1; }; }; ")
				for _, j := range to {
					if j != i {
						fmt.Fprintf(&cmd, "p %s; p -6 %s; ", guests[j].ip(j), guests[j].ip6(j))
					}
				}
				cmd.WriteString("test $f = 0") // not exit: that would end the console shell
				out, code, err := guests[i].g.Run(cmd.String(), 5*time.Minute)
				if err != nil || code != 0 {
					t.Errorf("%s: %v %s", guests[i].name, err, out)
				}
			})
		}
		wg.Wait()
	}
	all := []int{0, 1, 2, 3, 4, 5, 6}
	t.Run("mesh", func(t *testing.T) { meshPing(t, all, all) })
	t.Run("full-size", func(t *testing.T) {
		// 1472 bytes of ICMP payload make 1514-byte frames, across two kinds.
		if out, code, err := guests[0].g.Run("ping -c2 -W3 -s 1472 "+guests[4].ip(4), time.Minute); err != nil || code != 0 {
			t.Fatalf("%v %s", err, out)
		}
	})
	t.Run("restart", func(t *testing.T) {
		// stream-unix connects to zswitch; stream-server is dialled by it.
		guests[0].g.Kill()
		guests[2].g.Kill()
		meshPing(t, []int{1}, []int{3, 4})
		var wg sync.WaitGroup
		wg.Go(func() { guests[0].g.Restart(t) })
		wg.Go(func() { guests[2].g.Restart(t) })
		wg.Wait()
		meshPing(t, []int{0, 2}, all)
		if !strings.Contains(zlog.String(), "port=lab/2") {
			t.Errorf("the restarted guest's connection is not lab/2")
		}
	})

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
	if _, err := os.Stat(dir + "/z.sock"); !os.IsNotExist(err) {
		t.Fatal("listening socket left behind")
	}
}

func freeTCP(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

func freeUDP(t *testing.T) string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, p, _ := net.SplitHostPort(c.LocalAddr().String())
	return p
}

// syncBuffer is a bytes.Buffer safe for a child's stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
