package dgram

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/internal/qemutest"
	"github.com/zswitch/zswitch/ports"
)

// hub forwards every frame read on one port to all the others, like a
// switch that never learns: enough to connect guests in a test. It stops
// when the test ends.
func hub(t *testing.T, ps ...ports.Port) {
	t.Helper()
	var wg sync.WaitGroup
	mu := make([]sync.Mutex, len(ps)) // one writer per port at a time
	for i, p := range ps {
		wg.Go(func() {
			pool := frame.NewPool(p.BatchSize(), frame.DefaultSlotSize)
			fs := make([]*frame.Frame, p.BatchSize())
			pool.Get(fs)
			for {
				n, err := p.ReadFrames(fs)
				for j, q := range ps {
					if j != i && n > 0 {
						mu[j].Lock()
						q.WriteFrames(fs[:n])
						mu[j].Unlock()
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.Close()
		}
		wg.Wait()
	})
}

func nic(backend string, i int) []string {
	return []string{"-netdev", backend, "-device", fmt.Sprintf("e1000,netdev=n0,mac=52:54:00:78:00:%02x", i)}
}

// TestQEMU connects three QEMU guests through the three ways a datagram port
// meets QEMU (dgram over unix, dgram over UDP, legacy socket udp=) and pings
// across, with full-size frames, and across a guest restart.
func TestQEMU(t *testing.T) {
	if err := qemutest.Available(); err != nil && testing.Short() {
		t.Skip(err)
	}
	dir := t.TempDir()
	zA, qA := filepath.Join(dir, "zsw-a.sock"), filepath.Join(dir, "qa.sock")
	zB, qB, zC, qC := freeUDP(t), freeUDP(t), freeUDP(t), freeUDP(t)

	a, err := OpenUnix(zA, qA, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenUDP(zB, qB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenUDP(zC, qC, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub(t, a, b, c)

	guests := make([]*qemutest.Guest, 3)
	var wg sync.WaitGroup
	for i, args := range [][]string{
		nic(fmt.Sprintf("dgram,id=n0,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", qA, zA), 1),
		nic(fmt.Sprintf("dgram,id=n0,local.type=inet,local.host=%v,local.port=%d,remote.type=inet,remote.host=%v,remote.port=%d",
			qB.Addr(), qB.Port(), zB.Addr(), zB.Port()), 2),
		nic(fmt.Sprintf("socket,id=n0,udp=%v,localaddr=%v", zC, qC), 3),
	} {
		wg.Go(func() {
			guests[i] = qemutest.Boot(t, qemutest.Config{
				Name:    fmt.Sprintf("g%d", i+1),
				IP:      fmt.Sprintf("10.78.0.%d/24", i+1),
				IP6:     fmt.Sprintf("fd78::%d/64", i+1),
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
		g := guests[from-1]
		for _, addr := range []string{fmt.Sprintf("10.78.0.%d", to), fmt.Sprintf("fd78::%d", to)} {
			if err := g.Ping(addr, 1); err != nil {
				t.Fatal(err)
			}
		}
		// 1472 bytes of ICMP payload fill a 1514-byte frame.
		cmd := fmt.Sprintf("ping -c 2 -W 2 -s 1472 10.78.0.%d", to)
		if out, code, err := g.Run(cmd, time.Minute); err != nil || code != 0 {
			t.Fatalf("g%d: %s: %d, %v\n%s", from, cmd, code, err, out)
		}
	}
	t.Run("ping", func(t *testing.T) {
		ping(t, 1, 2)
		ping(t, 2, 3)
		ping(t, 3, 1)
	})
	t.Run("restart-unix-peer", func(t *testing.T) {
		guests[0].Kill()
		ping(t, 2, 3)
		guests[0].Restart(t)
		ping(t, 1, 2)
		ping(t, 3, 1)
	})
	for i, p := range []*Conn{a, b, c} {
		for r := range ports.NumDropReasons {
			if r == ports.DropLinkDown && i == 0 {
				continue // while g1 was down
			}
			if d := p.Dropped(r); d != 0 {
				t.Errorf("%v: %d frames dropped as %v", p, d, r)
			}
		}
	}
}
