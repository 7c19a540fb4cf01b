package mcast

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/internal/qemutest"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/dgram"
)

// bridge forwards frames both ways between two ports and calls inspect for
// every frame read on the first. It stops when the test ends.
func bridge(t *testing.T, inspect func([]byte), x, y ports.Port) {
	t.Helper()
	var wg sync.WaitGroup
	ps := []ports.Port{x, y}
	for i, p := range ps {
		wg.Go(func() {
			pool := frame.NewPool(p.BatchSize(), frame.DefaultSlotSize)
			fs := make([]*frame.Frame, p.BatchSize())
			pool.Get(fs)
			for {
				n, err := p.ReadFrames(fs)
				if i == 0 {
					for _, f := range fs[:n] {
						inspect(f.Bytes())
					}
				}
				ps[1-i].WriteFrames(fs[:n])
				if err != nil {
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		x.Close()
		y.Close()
		wg.Wait()
	})
}

// TestQEMU puts two QEMU guests on a multicast hub, one with the legacy
// socket backend and one with dgram, and bridges the hub through the port
// to a third guest on a dgram unix port. Everyone pings everyone; the port
// must never hand back the frames it sent to the hub.
//
// QEMU runs in the host's namespace; all traffic stays on lo (localaddr
// 127.0.0.1, TTL 1).
func TestQEMU(t *testing.T) {
	if err := qemutest.Available(); err != nil && testing.Short() {
		t.Skip(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := netip.AddrPortFrom(netip.MustParseAddr("230.0.0.78"), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
	pc.Close()

	hubPort, err := Join(g, lo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	zF, qF := filepath.Join(dir, "zsw-f.sock"), filepath.Join(dir, "qf.sock")
	fPort, err := dgram.OpenUnix(zF, qF, dgram.Options{})
	if err != nil {
		t.Fatal(err)
	}
	macF := []byte{0x52, 0x54, 0, 0x78, 0, 0x06}
	var ownBack atomic.Int64
	bridge(t, func(b []byte) {
		if len(b) >= 12 && bytes.Equal(b[6:12], macF) {
			ownBack.Add(1) // a frame the port sent came back from the hub
		}
	}, hubPort, fPort)

	nic := func(backend string, i int) []string {
		return []string{"-netdev", backend, "-device", fmt.Sprintf("e1000,netdev=n0,mac=52:54:00:78:00:%02x", i)}
	}
	names := []string{"d", "e", "f"}
	guests := make([]*qemutest.Guest, 3)
	var wg sync.WaitGroup
	for i, args := range [][]string{
		nic(fmt.Sprintf("socket,id=n0,mcast=%v,localaddr=127.0.0.1", g), 4),
		nic(fmt.Sprintf("dgram,id=n0,remote.type=inet,remote.host=%v,remote.port=%d,local.type=inet,local.host=127.0.0.1,local.port=0", g.Addr(), g.Port()), 5),
		nic(fmt.Sprintf("dgram,id=n0,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", qF, zF), 6),
	} {
		wg.Go(func() {
			guests[i] = qemutest.Boot(t, qemutest.Config{
				Name:    names[i],
				IP:      fmt.Sprintf("10.78.1.%d/24", i+4),
				IP6:     fmt.Sprintf("fd78:1::%d/64", i+4),
				NetArgs: args,
			})
		})
	}
	wg.Wait()
	if t.Failed() || t.Skipped() {
		return
	}
	ping := func(t *testing.T, from, to int) {
		t.Helper()
		gu := guests[from-4]
		for _, addr := range []string{fmt.Sprintf("10.78.1.%d", to), fmt.Sprintf("fd78:1::%d", to)} {
			if err := gu.Ping(addr, 1); err != nil {
				t.Fatal(err)
			}
		}
		cmd := fmt.Sprintf("ping -c 3 -W 2 -s 1472 10.78.1.%d", to)
		out, code, err := gu.Run(cmd, time.Minute)
		if err != nil || code != 0 {
			t.Fatalf("%s: %s: %d, %v\n%s", gu.Name(), cmd, code, err, out)
		}
		if strings.Contains(out, "DUP") {
			t.Errorf("%s: duplicate replies:\n%s", gu.Name(), out)
		}
	}
	t.Run("ping", func(t *testing.T) {
		ping(t, 6, 4) // through the port
		ping(t, 5, 6)
		ping(t, 4, 5) // on the hub alone
	})
	if n := ownBack.Load(); n != 0 {
		t.Errorf("the port read back %d of its own frames", n)
	}
	if hubPort.Echoes() == 0 {
		t.Error("no echoes counted: did the port's frames reach the hub?")
	}
	t.Logf("hub port: %d echoes of its own frames discarded", hubPort.Echoes())
	for _, p := range []interface {
		Dropped(ports.DropReason) uint64
		String() string
	}{hubPort, fPort} {
		for r := range ports.NumDropReasons {
			if d := p.Dropped(r); d != 0 {
				t.Errorf("%v: %d frames dropped as %v", p, d, r)
			}
		}
	}
}
