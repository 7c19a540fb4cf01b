package engine

import (
	"testing"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/ports"
)

func mac(i int) [6]byte { return [6]byte{0x02, 0, 0, 0, byte(i >> 8), byte(i)} }

// Beyond a port's MAC limit, frames from new MACs are dropped and counted;
// known MACs keep working.
func TestMACLimitDrops(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	pa := attachWith(t, e, "a", a, PortConfig{MACLimit: 3})
	attach(t, e, "b", b)
	for i := range 10 {
		a.inject(ethFrame(bcast, mac(i), 60))
	}
	for i := range 3 {
		expectFrame(t, b, ethFrame(bcast, mac(i), 60), "b")
	}
	expectNothing(t, b, "b")
	a.inject(ethFrame(bcast, mac(1), 60))
	expectFrame(t, b, ethFrame(bcast, mac(1), 60), "b (a known MAC)")
	s := pa.Stats()
	waitFor(t, func() bool { return s.IngressDrops[ports.DropMACLimit].Load() == 7 }, "7 mac_limit drops")
	if n := e.FDB().PortCount(pa.ID); n != 3 {
		t.Fatalf("learned %d MACs on a", n)
	}
}

// Sticky MACs stay bound to their port: the same MAC on another port is
// dropped as mac_violation, and after the port leaves the binding goes.
func TestStickyBinding(t *testing.T) {
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	pa := attachWith(t, e, "a", a, PortConfig{MACLimit: 1, Sticky: true})
	pb := attach(t, e, "b", b)
	attach(t, e, "c", c)
	a.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, b, ethFrame(bcast, macA, 60), "b")
	expectFrame(t, c, ethFrame(bcast, macA, 60), "c")
	b.inject(ethFrame(bcast, macA, 60)) // a spoofer on b
	expectNothing(t, c, "c (spoofed frame)")
	waitFor(t, func() bool { return pb.Stats().IngressDrops[ports.DropMACViolation].Load() == 1 }, "mac_violation")
	es := e.FDB().Entries()
	if len(es) != 1 || !es[0].Sticky || es[0].Port != pa.ID {
		t.Fatalf("entries %+v", es)
	}
	if err := e.Detach("a"); err != nil {
		t.Fatal(err)
	}
	b.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, c, ethFrame(bcast, macA, 60), "c (binding gone with its port)")
}

// Isolated ports reach the others but not each other, for unicast and
// flooding alike.
func TestIsolatedPorts(t *testing.T) {
	e := newEngine(t, Config{})
	i1, i2, up := newMemPort(), newMemPort(), newMemPort()
	p1 := attachWith(t, e, "i1", i1, PortConfig{Isolated: true})
	attachWith(t, e, "i2", i2, PortConfig{Isolated: true})
	attach(t, e, "up", up)
	i2.inject(ethFrame(bcast, macB, 60)) // learn B on i2
	expectFrame(t, up, ethFrame(bcast, macB, 60), "up")
	expectNothing(t, i1, "i1")
	i1.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, up, ethFrame(bcast, macA, 60), "up")
	expectNothing(t, i2, "i2")
	i1.inject(ethFrame(macB, macA, 60)) // unicast to the other isolated port
	expectNothing(t, i2, "i2 (unicast)")
	waitFor(t, func() bool { return p1.Stats().IngressDrops[ports.DropIsolated].Load() == 1 }, "isolated drop")
	up.inject(ethFrame(bcast, macC, 60)) // the uplink reaches both
	expectFrame(t, i1, ethFrame(bcast, macC, 60), "i1")
	expectFrame(t, i2, ethFrame(bcast, macC, 60), "i2")
}

// Storm control passes a burst, then drops broadcasts over the rate;
// unicast is never limited.
func TestStormControl(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	b.out = nil // count only
	pa := attachWith(t, e, "a", a, PortConfig{StormPPS: 1, StormBurst: 100})
	attach(t, e, "b", b)
	for range 1000 {
		a.inject(ethFrame(bcast, macA, 60))
	}
	s := pa.Stats()
	waitFor(t, func() bool { return s.RxFrames.Load() == 1000 }, "all read")
	// 100 in the burst, plus at most one per second that passed.
	if fwd := s.Forwarded.Load(); fwd < 100 || fwd > 110 {
		t.Fatalf("forwarded %d broadcasts, want the burst of 100", fwd)
	}
	if d := s.IngressDrops[ports.DropStorm].Load(); d+s.Forwarded.Load() != 1000 {
		t.Fatalf("storm drops %d + forwarded %d != 1000", d, s.Forwarded.Load())
	}
	before := s.Forwarded.Load()
	for range 500 {
		a.inject(ethFrame(macB, macA, 60)) // unknown unicast: flooded, not limited
	}
	waitFor(t, func() bool { return s.Forwarded.Load() == before+500 }, "unicast unlimited")
}

// Damping holds a flapping MAC on the port it was on; the other port's
// frames from it drop as move_damped, and the flap shows in the table.
func TestMoveDampingInEngine(t *testing.T) {
	e := newEngine(t, Config{FDB: fdb.Config{MoveLimit: 2, MoveWindow: time.Minute, MoveHold: time.Minute}})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	c.out = nil
	pa := attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	attach(t, e, "c", c)
	for i := range uint64(5) { // one at a time, so the frames alternate ports
		a.inject(ethFrame(bcast, macA, 60))
		waitFor(t, func() bool { return pa.Stats().RxFrames.Load() == i+1 }, "a read")
		b.inject(ethFrame(bcast, macA, 60))
		waitFor(t, func() bool { return pb.Stats().RxFrames.Load() == i+1 }, "b read")
	}
	damped := pa.Stats().IngressDrops[ports.DropMoveDamped].Load() + pb.Stats().IngressDrops[ports.DropMoveDamped].Load()
	if st := e.FDB().Stats(); st.Moved != 2 || st.Damped != damped || damped == 0 || st.Flapping != 1 {
		t.Fatalf("fdb %+v, damped drops %d", st, damped)
	}
	if moves := pa.Stats().MACMoves.Load() + pb.Stats().MACMoves.Load(); moves != 2 {
		t.Fatalf("per-port MAC moves %d, want 2", moves)
	}
}
