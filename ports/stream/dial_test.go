package stream

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// qemuServer listens like QEMU with server=on, and accepts one connection.
func qemuServer(t testing.TB, path string) (net.Listener, func() *qemu) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, func() *qemu {
		t.Helper()
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &qemu{conn}
	}
}

func dial(t testing.TB, network, addr string, opt Options) *Conn {
	t.Helper()
	c, err := Dial(network, addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialArgs(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp", "127.0.0.1:1"}, {"unix", ""}, {"", "x"}} {
		if c, err := Dial(tc.network, tc.addr, Options{}); err == nil {
			c.Close()
			t.Errorf("Dial(%q, %q): no error", tc.network, tc.addr)
		}
	}
}

func TestDialReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	ln, accept := qemuServer(t, path)
	c := dial(t, "unix", path, Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	q := accept()
	waitFor(t, "link up", c.LinkUp.Load)

	// One reader for the whole test: it must ride out the restart.
	type result struct {
		b   []byte
		err error
	}
	rx := make(chan result, 16)
	go func() {
		fs := frames(t, 8, frame.DefaultSlotSize)
		for {
			n, err := c.ReadFrames(fs)
			for _, f := range fs[:n] {
				rx <- result{b: append([]byte(nil), f.Bytes()...)}
			}
			if err != nil {
				rx <- result{err: err}
				return
			}
		}
	}()
	expect := func(want []byte) {
		t.Helper()
		select {
		case r := <-rx:
			if r.err != nil || string(r.b) != string(want) {
				t.Fatalf("ReadFrames: %d bytes, %v", len(r.b), r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no frame")
		}
	}
	out := frames(t, 1, frame.DefaultSlotSize)
	exchange := func(q *qemu, i int) {
		t.Helper()
		q.send(t, ethFrame(i, 60))
		expect(ethFrame(i, 60))
		setFrame(out[0], ethFrame(i+1, 70))
		if n, err := c.WriteFrames(out); n != 1 || err != nil {
			t.Fatalf("WriteFrames: %d, %v", n, err)
		}
		if got := q.recv(t, 5*time.Second); string(got) != string(ethFrame(i+1, 70)) {
			t.Fatalf("peer got %d bytes", len(got))
		}
	}
	exchange(q, 1)

	// QEMU exits.
	q.Close()
	ln.Close()
	waitFor(t, "link down", func() bool { return !c.LinkUp.Load() })
	waitFor(t, "a failed dial", func() bool { return c.Errors.Load() > 0 })
	if d := c.Disconnects.Load(); d != 1 {
		t.Fatalf("disconnects %d, want 1", d)
	}
	t0 := time.Now()
	if n, err := c.WriteFrames(out); n != 0 || err != nil || time.Since(t0) > 100*time.Millisecond {
		t.Fatalf("WriteFrames while down: %d, %v in %v", n, err, time.Since(t0))
	}
	if got := c.EgressDrops[ports.DropLinkDown].Load(); got != 1 {
		t.Fatalf("link_down %d, want 1", got)
	}
	select {
	case r := <-rx:
		t.Fatalf("ReadFrames returned while down: %d bytes, %v", len(r.b), r.err)
	default:
	}

	// QEMU is back at the same path.
	os.Remove(path)
	_, accept = qemuServer(t, path)
	q = accept()
	waitFor(t, "link up again", c.LinkUp.Load)
	exchange(q, 3)
	if n := c.Connects.Load(); n != 2 {
		t.Fatalf("connects %d, want 2", n)
	}

	c.Close()
	select {
	case r := <-rx:
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("ReadFrames after Close: %v", r.err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock ReadFrames")
	}
}

func TestDialBackoff(t *testing.T) {
	c := dial(t, "unix", filepath.Join(t.TempDir(), "nobody.sock"),
		Options{BackoffMin: 20 * time.Millisecond, BackoffMax: 80 * time.Millisecond})
	time.Sleep(500 * time.Millisecond)
	// Dials at 0, 20, 60, 140, 220, 300, 380, 460 ms: 8, give or take.
	if n := c.Errors.Load(); n < 4 || n > 12 {
		t.Fatalf("%d failed dials in 500ms, want about 8", n)
	}
	if c.LinkUp.Load() || c.Connects.Load() != 0 {
		t.Fatal("link up without a peer")
	}
}

func TestDialBadFramingRedials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	ln, accept := qemuServer(t, path)
	c := dial(t, "unix", path, Options{BackoffMin: 10 * time.Millisecond})
	q := accept()
	good := ethFrame(1, 60)
	q.Write(header(0))
	second := make(chan net.Conn, 1)
	go func() {
		// The reader finds the bad length, hangs up and dials again.
		q, err := ln.Accept()
		if err == nil {
			(&qemu{q}).Send(good)
		}
		second <- q
	}()
	mustRead(t, c, [][]byte{good})
	if q := <-second; q != nil {
		defer q.Close()
	}
	if got := c.IngressDrops[ports.DropBadFraming].Load(); got != 1 {
		t.Fatalf("bad_framing %d, want 1", got)
	}
	if c.Connects.Load() != 2 || c.Disconnects.Load() != 1 {
		t.Fatalf("connects %d disconnects %d, want 2 1", c.Connects.Load(), c.Disconnects.Load())
	}
}

// TestSlowPeerDial: a dialled QEMU that stops reading keeps its
// connection too; frames are dropped and counted, and WriteFrames never
// reports an error.
func TestSlowPeerDial(t *testing.T) {
	const timeout = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "qemu.sock")
	_, accept := qemuServer(t, path)
	c := dial(t, "unix", path, Options{WriteTimeout: timeout, BackoffMin: 10 * time.Millisecond})
	q := accept() // and do not read yet
	waitFor(t, "link up", c.LinkUp.Load)
	out := frames(t, 64, frame.DefaultSlotSize)
	for _, f := range out {
		setFrame(f, ethFrame(1, 1514))
	}
	start := time.Now()
	var sent int
	for c.EgressDrops[ports.DropQueueFull].Load() == 0 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("writes never timed out")
		}
		t0 := time.Now()
		n, err := c.WriteFrames(out)
		if err != nil {
			t.Fatalf("WriteFrames: %v; a dialled port reports none", err)
		}
		if d := time.Since(t0); d > 10*timeout {
			t.Fatalf("WriteFrames took %v with WriteTimeout %v", d, timeout)
		}
		sent += n
	}
	// One more write finishes the frame the deadline split, then goes out.
	go c.WriteFrames(out[:1])
	for range sent + 1 {
		if b := q.recv(t, 5*time.Second); len(b) != 1514 {
			t.Fatalf("got a %d-byte frame: the stream broke", len(b))
		}
	}
	if c.Connects.Load() != 1 || !c.LinkUp.Load() {
		t.Fatalf("connects %d, link up %v: the connection was given up", c.Connects.Load(), c.LinkUp.Load())
	}
}
