package fdb

import (
	"testing"
	"time"
)

func TestPortPolicyLimitDrops(t *testing.T) {
	tb := New(Config{PortLimit: 1}) // table-wide: refuse, forward
	tb.SetPortPolicy(1, PortPolicy{Limit: 2})
	for i, want := range []Result{Learned, Learned, OverLimit, OverLimit} {
		if r := tb.Learn(key(i), 1, t0); r != want {
			t.Fatalf("MAC %d on port 1: %v, want %v", i, r, want)
		}
	}
	// Port 2 has no policy of its own: the table-wide limit refuses.
	tb.Learn(key(10), 2, t0)
	if r := tb.Learn(key(11), 2, t0); r != Refused {
		t.Fatalf("port 2 over the table-wide limit: %v, want Refused", r)
	}
	// A known MAC on a full port is still Known.
	if r := tb.Learn(key(0), 1, t0+1); r != Known {
		t.Fatalf("known MAC: %v", r)
	}
	// A MAC moving onto a full port is over the limit too, and stays put.
	if r, from := tb.LearnFrom(key(10), 1, t0); r != OverLimit || from != 2 {
		t.Fatalf("move onto a full port: %v from %d", r, from)
	}
	if p, _ := tb.Lookup(key(10)); p != 2 {
		t.Fatalf("MAC moved to %d despite the limit", p)
	}
	if s := tb.Stats(); s.OverLimit != 3 || s.Refused != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n := tb.PortCount(1); n != 2 {
		t.Fatalf("PortCount %d", n)
	}
	// Removing the policy frees the port.
	tb.SetPortPolicy(1, PortPolicy{})
	if r := tb.Learn(key(3), 1, t0); r != Refused { // back under the table-wide limit of 1
		t.Fatalf("after clearing the policy: %v", r)
	}
}

func TestStickyBindsMACs(t *testing.T) {
	tb := New(Config{AgingTime: time.Second})
	tb.SetPortPolicy(1, PortPolicy{Limit: 1, Sticky: true})
	if r := tb.Learn(key(1), 1, t0); r != Learned {
		t.Fatalf("first MAC: %v", r)
	}
	if r := tb.Learn(key(2), 1, t0); r != OverLimit {
		t.Fatalf("second MAC on a sticky port of one: %v", r)
	}
	if n := tb.Expire(t0 + 60_000); n != 0 {
		t.Fatalf("sticky entry aged")
	}
	if r, on := tb.LearnFrom(key(1), 2, t0); r != Bound || on != 1 {
		t.Fatalf("sticky MAC from another port: %v on %d", r, on)
	}
	es := tb.Entries()
	if len(es) != 1 || !es[0].Sticky || !es[0].Static || es[0].Seen.UnixMilli() != t0 {
		t.Fatalf("entries %+v", es)
	}
	if s := tb.Stats(); s.Sticky != 1 || s.Static != 0 || s.Bound != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Flushing dynamic entries keeps it; a port going away drops it.
	tb.FlushPort(1, false)
	if _, ok := tb.Lookup(key(1)); !ok {
		t.Fatalf("sticky entry flushed with the dynamic ones")
	}
	tb.FlushPort(1, true)
	if s := tb.Stats(); s.Entries != 0 || s.Sticky != 0 || tb.PortCount(1) != 0 {
		t.Fatalf("after FlushPort: %+v count %d", s, tb.PortCount(1))
	}
}

func TestMoveDamping(t *testing.T) {
	tb := New(Config{MoveLimit: 3, MoveWindow: time.Second, MoveHold: 10 * time.Second})
	k := key(7)
	tb.Learn(k, 1, t0)
	now := t0
	port := uint16(1)
	var moves, damped, known int
	for range 10 { // two guests on one MAC: the frames alternate ports
		now += 10
		port = 3 - port
		switch r, _ := tb.LearnFrom(k, port, now); r {
		case Moved:
			moves++
		case Damped:
			damped++
		case Known: // the frames of the guest that keeps the MAC
			known++
		default:
			t.Fatalf("unexpected %v", r)
		}
	}
	if moves != 3 || damped != 4 || known != 3 {
		t.Fatalf("moves %d damped %d known %d, want 3, 4, 3", moves, damped, known)
	}
	held, _ := tb.Lookup(k)
	fl := tb.Flapping()
	if len(fl) != 1 || fl[0].Key != k || fl[0].HeldUntil.IsZero() {
		t.Fatalf("flapping %+v", fl)
	}
	if s := tb.Stats(); s.Flapping != 1 || s.Damped != 4 || s.Moved != 3 {
		t.Fatalf("stats %+v", s)
	}
	// After the hold the MAC may move again.
	now += 10_001
	if r := tb.Learn(k, 3-held, now); r != Moved {
		t.Fatalf("after the hold: %v", r)
	}
	tb.Expire(now + 20_000)
	if s := tb.Stats(); s.Flapping != 0 {
		t.Fatalf("history not pruned: %+v", s)
	}
}

func TestFlappingWithoutDamping(t *testing.T) {
	tb := New(Config{})
	k := key(9)
	tb.Learn(k, 1, t0)
	tb.Learn(k, 2, t0+1)
	if s := tb.Stats(); s.Flapping != 0 {
		t.Fatalf("one move is a migration, not a flap: %+v", s)
	}
	if r := tb.Learn(k, 1, t0+2); r != Moved {
		t.Fatalf("damping off but %v", r)
	}
	fl := tb.Flapping()
	if len(fl) != 1 || fl[0].Ports != [2]uint16{2, 1} || fl[0].Moves != 2 || !fl[0].HeldUntil.IsZero() {
		t.Fatalf("flapping %+v", fl)
	}
}
