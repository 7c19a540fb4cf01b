package engine

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/zswitch/zswitch/ports"
)

// slowReader drains m.out, pausing every 256 frames so that m's egress is
// slower than the sender's ingress, and returns the sequence numbers it
// saw once stop is closed and nothing more comes.
func slowReader(m *memPort, stop <-chan struct{}) <-chan []uint32 {
	done := make(chan []uint32, 1)
	go func() {
		var got []uint32
		for {
			var b []byte
			select {
			case b = <-m.out:
			case <-stop:
				select {
				case b = <-m.out:
				default:
					done <- got
					return
				}
			}
			got = append(got, binary.BigEndian.Uint32(b[14:]))
			if len(got)%256 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	return done
}

// backpressureRun sends frames from a to b, whose peer reads slowly,
// through queues of 256 frames, and returns what b's peer received and
// b's queue_full drops.
func backpressureRun(t *testing.T, wait time.Duration, frames int) (got []uint32, full uint64) {
	e := newEngine(t, Config{QueueLen: 256})
	a, b := newMemPort(), newMemPort()
	b.out = make(chan []byte, 64)
	attach(t, e, "a", a)
	pb := attachWith(t, e, "b", b, PortConfig{Backpressure: wait})
	b.inject(seqFrame(bcast, mac(2), 0)) // teach the engine b's MAC
	if _, ok := a.recv(5 * time.Second); !ok {
		t.Fatal("b's first frame did not reach a")
	}
	stop := make(chan struct{})
	done := slowReader(b, stop)
	go func() {
		for i := range frames {
			a.inject(seqFrame(mac(2), mac(1), uint32(i)))
		}
	}()
	waitFor(t, func() bool {
		s := pb.Stats()
		return s.Enqueued.Load() == uint64(frames) && s.TxFrames.Load()+sumDrops(&s.EgressDrops) == uint64(frames)
	}, "every frame written or dropped")
	e.Close()
	close(stop)
	return <-done, pb.Stats().EgressDrops[ports.DropQueueFull].Load()
}

// TestBackpressureLossless: into a port with backpressure, a sender faster
// than the port's peer loses nothing: its ingress waits, and every frame
// arrives in order. Without backpressure the same run drops (the control
// that shows the run overloads the port).
func TestBackpressureLossless(t *testing.T) {
	const frames = 50_000
	got, full := backpressureRun(t, MaxBackpressure, frames)
	if full != 0 || len(got) != frames {
		t.Fatalf("with backpressure: %d queue_full drops, %d of %d frames arrived", full, len(got), frames)
	}
	for i, s := range got {
		if s != uint32(i) {
			t.Fatalf("frame %d carries sequence number %d", i, s)
		}
	}
	got, full = backpressureRun(t, 0, frames)
	if full == 0 || len(got)+int(full) != frames {
		t.Fatalf("without backpressure: %d queue_full drops, %d arrived of %d: the run did not overload the port", full, len(got), frames)
	}
}

// TestBackpressureBounded: a port with backpressure whose peer stopped
// reading delays its senders by at most its limit per batch, then drops;
// the sender's other frames still reach everyone else, all of them.
func TestBackpressureBounded(t *testing.T) {
	const frames = 3000 // b's queue holds 1024, then each batch waits
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	b.stuck = true
	attach(t, e, "a", a)
	pb := attachWith(t, e, "b", b, PortConfig{Backpressure: 20 * time.Millisecond})
	// c waits for room too: that a reads faster than c's egress writes must
	// not drop frames here.
	pc := attachWith(t, e, "c", c, PortConfig{Backpressure: MaxBackpressure})
	for i := range frames { // broadcast: to b and c
		a.inject(seqFrame(bcast, mac(1), uint32(i)))
	}
	for i := range frames {
		got, ok := c.recv(5 * time.Second)
		if !ok {
			t.Fatalf("c got %d of %d frames", i, frames)
		}
		if s := binary.BigEndian.Uint32(got[14:]); s != uint32(i) {
			t.Fatalf("c's frame %d carries sequence number %d", i, s)
		}
	}
	s := pb.Stats()
	queued, _ := pb.Queue()
	if full := s.EgressDrops[ports.DropQueueFull].Load(); full == 0 || full+uint64(queued) != frames {
		t.Errorf("b: %d queue_full drops + %d queued != %d frames", full, queued, frames)
	}
	if d := sumDrops(&pc.Stats().EgressDrops); d != 0 {
		t.Errorf("c dropped %d frames", d)
	}
}

// TestBackpressureDetachWakes: a sender waiting for room in a port that
// detaches stops waiting (here the wait has no limit, so only the detach
// can end it: the closing port or its closing channel wakes it), goes on
// forwarding to the others, and what it held for the port counts as
// link_down.
func TestBackpressureDetachWakes(t *testing.T) {
	const frames = 1200 // b's queue holds 1024, then a waits
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	b.stuck = true
	pa := attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	attachWith(t, e, "c", c, PortConfig{Backpressure: MaxBackpressure}) // c drops nothing
	pol := *pb.policy.Load()
	pol.backpressure = int64(time.Hour)
	pb.policy.Store(&pol)
	for i := range frames {
		a.inject(seqFrame(bcast, mac(1), uint32(i)))
	}
	waitFor(t, func() bool { return pb.roomWaiters.Load() == 1 }, "a waiting for room in b")
	if err := e.Detach("b"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return pa.Stats().RxFrames.Load() == frames }, "a reading on after b left")
	for i := range frames {
		if _, ok := c.recv(5 * time.Second); !ok {
			t.Fatalf("c got %d of %d frames", i, frames)
		}
	}
	s := pb.Stats()
	if got, want := s.Enqueued.Load(), s.TxFrames.Load()+sumDrops(&s.EgressDrops); got != want || s.EgressDrops[ports.DropLinkDown].Load() == 0 {
		t.Errorf("b: enqueued %d, tx+drops %d, drops %v", got, want, dropMap(&s.EgressDrops))
	}
}
