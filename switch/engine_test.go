package engine

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func attach(t testing.TB, e *Engine, name string, m *memPort) *Port {
	t.Helper()
	p, err := e.Attach(name, "mem", m)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func expectFrame(t *testing.T, m *memPort, want []byte, who string) {
	t.Helper()
	got, ok := m.recv(2 * time.Second)
	if !ok {
		t.Fatalf("%s received nothing", who)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s received a different frame (%d bytes, want %d)", who, len(got), len(want))
	}
}

func expectNothing(t *testing.T, m *memPort, who string) {
	t.Helper()
	if b, ok := m.recv(100 * time.Millisecond); ok {
		t.Fatalf("%s received a frame it should not have (%x…)", who, b[:14])
	}
}

func TestFloodThenLearn(t *testing.T) {
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	attach(t, e, "c", c)

	// Unknown unicast floods to every other port, never back to the sender.
	f1 := ethFrame(macB, macA, 60)
	a.inject(f1)
	expectFrame(t, b, f1, "b")
	expectFrame(t, c, f1, "c")
	expectNothing(t, a, "a (its own ingress port)")

	// B answers A: A's MAC was learned, so only A gets it.
	f2 := ethFrame(macA, macB, 100)
	b.inject(f2)
	expectFrame(t, a, f2, "a")
	expectNothing(t, c, "c")

	// Now B is known too.
	f3 := ethFrame(macB, macA, 1514)
	a.inject(f3)
	expectFrame(t, b, f3, "b")
	expectNothing(t, c, "c")
}

func TestBroadcastAndMulticastFlood(t *testing.T) {
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	attach(t, e, "c", c)
	// Even with A and B learned, group destinations flood: IPv6 ND relies on it.
	a.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, b, ethFrame(bcast, macA, 60), "b")
	expectFrame(t, c, ethFrame(bcast, macA, 60), "c")
	b.inject(ethFrame(macA, macB, 60))
	expectFrame(t, a, ethFrame(macA, macB, 60), "a")
	expectNothing(t, c, "c")
	for _, dst := range [][6]byte{bcast, ip6mc} {
		f := ethFrame(dst, macA, 86)
		a.inject(f)
		expectFrame(t, b, f, "b")
		expectFrame(t, c, f, "c")
		expectNothing(t, a, "a")
	}
}

func TestNoHairpin(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	pa := attach(t, e, "a", a)
	attach(t, e, "b", b)
	// A and C both sit behind port a (a hub segment, say).
	a.inject(ethFrame(bcast, macC, 60))
	expectFrame(t, b, ethFrame(bcast, macC, 60), "b")
	a.inject(ethFrame(macC, macA, 60))
	expectNothing(t, a, "a")
	expectNothing(t, b, "b")
	waitFor(t, func() bool { return pa.Stats().IngressDrops[ports.DropFiltered].Load() == 1 }, "filtered count")
}

func TestBadSourcesAndRunts(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	pa := attach(t, e, "a", a)
	attach(t, e, "b", b)
	a.inject(ethFrame(macB, bcast, 60)) // multicast source: 802.1D forbids
	a.inject(make([]byte, 13))          // runt
	a.inject(nil)                       // empty
	expectNothing(t, b, "b")
	s := pa.Stats()
	waitFor(t, func() bool {
		return s.IngressDrops[ports.DropMulticastSource].Load() == 1 && s.IngressDrops[ports.DropRunt].Load() == 2
	}, "drop counters")
	if _, ok := e.FDB().Lookup(fdb.Key{MAC: bcast, VLAN: 1}); ok {
		t.Fatal("a broadcast source was learned")
	}
}

func TestMoveAndStatic(t *testing.T) {
	e := newEngine(t, Config{Static: []StaticEntry{{MAC: macC, Port: "b"}}})
	a, b := newMemPort(), newMemPort()
	pa := attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	if id, ok := e.FDB().Lookup(fdb.Key{MAC: macC, VLAN: 1}); !ok || id != pb.ID {
		t.Fatalf("static entry: %d %v", id, ok)
	}
	// C's frames from port a neither move the static entry nor pass: the
	// entry binds C to b (port security), so they count as mac_violation.
	a.inject(ethFrame(macB, macC, 60))
	a.inject(ethFrame(macB, macA, 60))
	expectFrame(t, b, ethFrame(macB, macA, 60), "b")
	if n := pa.Stats().IngressDrops[ports.DropMACViolation].Load(); n != 1 {
		t.Fatalf("mac_violation drops %d, want 1", n)
	}
	b.inject(ethFrame(macA, macA, 60)) // A moved behind b (spoofed or migrated)
	waitFor(t, func() bool { return e.FDB().Stats().Moved == 1 }, "a move")
	if id, _ := e.FDB().Lookup(fdb.Key{MAC: macC, VLAN: 1}); id != pb.ID {
		t.Fatal("static entry moved")
	}
}

func TestTableFullStillFloods(t *testing.T) {
	e := newEngine(t, Config{FDB: fdb.Config{MaxEntries: 1}})
	a, b := newMemPort(), newMemPort()
	pa := attach(t, e, "a", a)
	attach(t, e, "b", b)
	a.inject(ethFrame(bcast, macA, 60))
	a.inject(ethFrame(bcast, macC, 60)) // not learned: table full
	expectFrame(t, b, ethFrame(bcast, macA, 60), "b")
	expectFrame(t, b, ethFrame(bcast, macC, 60), "b")
	b.inject(ethFrame(macC, macB, 60))
	expectFrame(t, a, ethFrame(macC, macB, 60), "a (by flooding)")
	waitFor(t, func() bool { return pa.Stats().LearnRefused.Load() == 1 }, "learn refused")
}

func TestDetachFlushesAndReattach(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	b.inject(ethFrame(bcast, macB, 60))
	expectFrame(t, a, ethFrame(bcast, macB, 60), "a")
	if err := e.Detach("b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.FDB().Lookup(fdb.Key{MAC: macB, VLAN: 1}); ok {
		t.Fatal("detached port's MACs stay in the table")
	}
	if err := e.Detach("b"); err == nil {
		t.Fatal("detaching twice succeeded")
	}
	b2 := newMemPort()
	attach(t, e, "b", b2)
	a.inject(ethFrame(macB, macA, 60))
	expectFrame(t, b2, ethFrame(macB, macA, 60), "b2")
}

func TestPeerHangupDetaches(t *testing.T) {
	e := newEngine(t, Config{})
	a := newMemPort()
	attach(t, e, "a", a)
	a.Close() // ReadFrames now fails like a closed connection
	waitFor(t, func() bool { _, ok := e.Port("a"); return !ok }, "auto-detach")
}

// TestSlowPortDoesNotStallOthers: a port whose peer stopped reading fills
// its own queue and tail-drops; traffic between the others goes on with no
// loss. The sender is paced by what b receives, as TCP would pace it, so
// any frame b misses is the stuck port's fault.
func TestSlowPortDoesNotStallOthers(t *testing.T) {
	e := newEngine(t, Config{QueueLen: 128})
	a, b, s := newMemPort(), newMemPort(), newMemPort()
	b.out = nil
	s.stuck = true
	attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	ps := attach(t, e, "stuck", s)
	const n, window = 5000, 32
	f := ethFrame(bcast, macA, 64) // floods: b and stuck both get every frame
	for sent := 0; sent < n; sent += window {
		for range window {
			a.inject(f)
		}
		want := uint64(sent + window)
		waitFor(t, func() bool { return pb.Stats().TxFrames.Load() == want }, fmt.Sprintf("b to receive %d frames", want))
	}
	if d := pb.Stats().EgressDrops[ports.DropQueueFull].Load(); d != 0 {
		t.Fatalf("b dropped %d frames while another port was stuck", d)
	}
	qs := ps.Stats()
	if d := qs.EgressDrops[ports.DropQueueFull].Load(); d < n-128-maxBatch*4 {
		t.Fatalf("stuck port: %d queue_full drops, want nearly %d", d, n)
	}
	if depth, hw := ps.Queue(); depth > 128 || hw > 128 {
		t.Fatalf("stuck queue depth %d high water %d exceed the limit 128", depth, hw)
	}
}

// TestIdentityUnderLoad floods and unicasts between 8 ports from all of
// them at once, detaches one mid-way, and then checks that every frame is
// accounted for exactly once.
func TestIdentityUnderLoad(t *testing.T) {
	e := newEngine(t, Config{QueueLen: 256})
	const nports, perPort = 8, 5000
	ms := make([]*memPort, nports)
	ps := make([]*Port, nports)
	for i := range ms {
		ms[i] = newMemPort()
		ms[i].out = nil
		ps[i] = attach(t, e, string(rune('a'+i)), ms[i])
	}
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			src := [6]byte{0x52, 0x54, 0, 0, 1, byte(i)}
			for k := range perPort {
				dst := [6]byte{0x52, 0x54, 0, 0, 1, byte(rng.IntN(nports + 2))} // some unknown
				if k%10 == 0 {
					dst = bcast
				}
				ms[i].inject(ethFrame(dst, src, 60+rng.IntN(1454)))
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := e.Detach("c"); err != nil { // mid-traffic
		t.Fatal(err)
	}
	wg.Wait()
	// Let the rest drain, then stop everything: counters are final.
	waitFor(t, func() bool {
		for i, p := range ps {
			if i != 2 && (len(ms[i].in) > 0 || p.queued.Load() > 0) {
				return false
			}
		}
		return true
	}, "drain")
	e.Close()
	var rx, fwd, inDrops, enq, tx, outDrops uint64
	for i, p := range ps {
		s := p.Stats()
		var in, out uint64
		for r := range ports.NumDropReasons {
			in += s.IngressDrops[r].Load()
			out += s.EgressDrops[r].Load()
		}
		if got, want := s.RxFrames.Load()+s.RxInvalid.Load(), s.Forwarded.Load()+in; got != want {
			t.Errorf("port %s: rx %d ≠ forwarded+ingress drops %d", p.Name, got, want)
		}
		if got, want := s.Enqueued.Load(), s.TxFrames.Load()+out; got != want {
			t.Errorf("port %s: enqueued %d ≠ tx+egress drops %d", p.Name, got, want)
		}
		if w := ms[i].written.Load(); w != s.TxFrames.Load() {
			t.Errorf("port %s: peer saw %d frames, tx counter %d", p.Name, w, s.TxFrames.Load())
		}
		rx += s.RxFrames.Load()
		fwd += s.Forwarded.Load()
		inDrops += in
		enq += s.Enqueued.Load()
		tx += s.TxFrames.Load()
		outDrops += out
	}
	t.Logf("rx %d forwarded %d ingress drops %d; copies %d tx %d egress drops %d", rx, fwd, inDrops, enq, tx, outDrops)
	if rx < nports*perPort/2 {
		t.Fatalf("only %d frames received", rx)
	}
	if free, total := e.Pool().Stats(); free != total {
		t.Fatalf("pool: %d of %d slots free after Close: frames leaked", free, total)
	}
}

func TestAttachErrors(t *testing.T) {
	e := newEngine(t, Config{})
	attach(t, e, "a", newMemPort())
	if _, err := e.Attach("a", "mem", newMemPort()); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, err := New(Config{QueueLen: 3}); err == nil {
		t.Fatal("queue shorter than a batch accepted")
	}
	if _, err := New(Config{SlotSize: 1 << 20}); err == nil {
		t.Fatal("1 MiB slots accepted")
	}
}

func TestAgingSweep(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEngine(t, Config{Now: clock, FDB: fdb.Config{AgingTime: 10 * time.Second}})
	a, b := newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	a.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, b, ethFrame(bcast, macA, 60), "b")
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	waitFor(t, func() bool { _, ok := e.FDB().Lookup(fdb.Key{MAC: macA, VLAN: 1}); return !ok }, "aging")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCloseWhilePortsLeave: Close succeeds while ports detach themselves
// (their peers hang up) at the same moment.
func TestCloseWhilePortsLeave(t *testing.T) {
	for range 50 {
		e, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		ms := make([]*memPort, 8)
		for i := range ms {
			ms[i] = newMemPort()
			attach(t, e, string(rune('a'+i)), ms[i])
		}
		for _, m := range ms {
			go m.Close()
		}
		if err := e.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

// TestMoveWarning: a MAC seen on two ports is logged once (rate-limited),
// however often it flaps, and every move is counted.
func TestMoveWarning(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	e := newEngine(t, Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))})
	a, b := newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	for range 5 { // the classic: two guests on QEMU's default MAC
		a.inject(ethFrame(bcast, macC, 60))
		expectFrame(t, b, ethFrame(bcast, macC, 60), "b")
		b.inject(ethFrame(bcast, macC, 60))
		expectFrame(t, a, ethFrame(bcast, macC, 60), "a")
	}
	waitFor(t, func() bool { return e.FDB().Stats().Moved == 9 }, "9 moves")
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(log.String(), "a MAC moved to another port"); n != 1 {
		t.Fatalf("%d move warnings, want 1:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "mac=52:54:00:00:00:0c") {
		t.Fatalf("the warning does not name the MAC:\n%s", log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
