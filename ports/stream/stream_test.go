package stream

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

var networks = []string{"unix", "tcp"}

func TestRoundTrip(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			c, q := listenPair(t, network, Options{})
			var want [][]byte
			for i, size := range []int{14, 60, 64, 100, 1514, 1518, frame.DefaultSlotSize} {
				want = append(want, ethFrame(i, size))
			}
			q.send(t, want...)
			mustRead(t, c, want)

			out := frames(t, len(want), frame.DefaultSlotSize)
			for i, f := range out {
				setFrame(f, want[i])
			}
			if n, err := c.WriteFrames(out); n != len(out) || err != nil {
				t.Fatalf("WriteFrames: %d, %v", n, err)
			}
			for i := range want {
				if got := q.recv(t, 5*time.Second); !bytes.Equal(got, want[i]) {
					t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want[i]))
				}
			}
			if s := c.Counters(); s.RxInvalid.Load() != 0 || s.RxFrames.Load() != 0 || s.TxFrames.Load() != 0 {
				t.Fatalf("a port counts drops only: rx_invalid %d rx %d tx %d",
					s.RxInvalid.Load(), s.RxFrames.Load(), s.TxFrames.Load())
			}
		})
	}
}

// countingConn counts reads, to see how many frames one read yields.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.reads++
	return c.Conn.Read(b)
}

func TestManyFramesPerRead(t *testing.T) {
	a, b := socketpair(t)
	cc := &countingConn{Conn: a}
	c := accepted("stream pair", cc, Options{}.withDefaults())
	defer c.Close()
	const total = 1000 // 68 KB: one write, one read
	var want [][]byte
	for i := range total {
		want = append(want, ethFrame(i, 64))
	}
	if _, err := b.Write(encode(want...)); err != nil {
		t.Fatal(err)
	}
	fs := frames(t, 64, frame.DefaultSlotSize)
	var got [][]byte
	for len(got) < total {
		n, err := c.ReadFrames(fs)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(fs) && len(got)+n != total {
			t.Fatalf("ReadFrames filled %d of %d slots with frames waiting", n, len(fs))
		}
		for _, f := range fs[:n] {
			got = append(got, bytes.Clone(f.Bytes()))
		}
	}
	sameFrames(t, got, want)
	if cc.reads > 2 {
		t.Fatalf("%d reads for %d frames sent in one write", cc.reads, total)
	}
}

// socketpair returns two connected unix stream sockets.
func socketpair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conns[0].Close(); conns[1].Close() })
	return conns[0], conns[1]
}

func TestSplitAtEveryByte(t *testing.T) {
	want := [][]byte{ethFrame(1, 14), ethFrame(2, 60), ethFrame(3, 100)}
	stream := encode(want...)
	for k := 1; k < len(stream); k++ {
		c, q := pipePair(t, Options{})
		go func() {
			q.Write(stream[:k])
			q.Write(stream[k:])
		}()
		mustRead(t, c, want)
		c.Close()
		q.Close()
	}
}

func TestOneByteAtATime(t *testing.T) {
	want := [][]byte{ethFrame(1, 14), ethFrame(2, 1514), ethFrame(3, 60)}
	stream := encode(want...)
	c, q := pipePair(t, Options{})
	go func() {
		for i := range stream {
			if _, err := q.Write(stream[i : i+1]); err != nil {
				return
			}
		}
	}()
	mustRead(t, c, want)
}

func TestOversizeSkipped(t *testing.T) {
	for _, chunk := range []int{1, 7, 1 << 20} {
		c, q := pipePair(t, Options{})
		small := ethFrame(1, 100)
		// Longer than the 2 KiB slot, valid for QEMU; then one too big
		// for the 256 KiB receive buffer, to skip across many reads.
		stream := encode(ethFrame(2, frame.DefaultSlotSize+1), small, bytes.Repeat([]byte{7}, DefaultMaxFrame), small)
		go func() {
			for len(stream) > 0 {
				k := min(chunk, len(stream))
				if _, err := q.Write(stream[:k]); err != nil {
					return
				}
				stream = stream[k:]
			}
		}()
		mustRead(t, c, [][]byte{small, small})
		s := c.Counters()
		if got := s.IngressDrops[ports.DropOversize].Load(); got != 2 {
			t.Fatalf("chunk %d: oversize %d, want 2", chunk, got)
		}
		if got := s.RxInvalid.Load(); got != 2 {
			t.Fatalf("chunk %d: rx_invalid %d, want 2", chunk, got)
		}
		c.Close()
	}
}

func TestMaxFrameOption(t *testing.T) {
	c, q := listenPair(t, "unix", Options{MaxFrame: 200})
	small, big := ethFrame(1, 200), ethFrame(2, 201)
	q.send(t, big, small)
	mustRead(t, c, [][]byte{small})
	if got := c.IngressDrops[ports.DropOversize].Load(); got != 1 {
		t.Fatalf("oversize in %d, want 1", got)
	}
	// Out too: the frames sent move to the front.
	out := frames(t, 3, frame.DefaultSlotSize)
	setFrame(out[0], big)
	out[1].SetLen(0)
	setFrame(out[2], small)
	if n, err := c.WriteFrames(out); n != 1 || err != nil || !bytes.Equal(out[0].Bytes(), small) {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if got := q.recv(t, 5*time.Second); !bytes.Equal(got, small) {
		t.Fatalf("peer got %d bytes", len(got))
	}
	if o, r := c.EgressDrops[ports.DropOversize].Load(), c.EgressDrops[ports.DropRunt].Load(); o != 1 || r != 1 {
		t.Fatalf("egress oversize %d runt %d, want 1 1", o, r)
	}
}

func TestBadFraming(t *testing.T) {
	for _, l := range []uint32{0, DefaultMaxFrame + 1, 0xffffffff} {
		for _, network := range networks {
			rec := &logRecorder{}
			c, q := listenPair(t, network, Options{Logger: slog.New(rec)})
			good := ethFrame(1, 60)
			stream := append(encode(good), header(l)...)
			stream = append(stream, bytes.Repeat([]byte{1}, 100)...)
			if _, err := q.Write(stream); err != nil {
				t.Fatal(err)
			}
			// The frame before the bad length still comes out.
			got, err := readFrames(t, c, 2, frame.DefaultSlotSize, 5*time.Second)
			sameFrames(t, got, [][]byte{good})
			if err == nil || isClosed(err) {
				t.Fatalf("len %d: ReadFrames error %v, want bad framing", l, err)
			}
			if got := c.IngressDrops[ports.DropBadFraming].Load(); got != 1 {
				t.Fatalf("len %d: bad_framing %d, want 1", l, got)
			}
			if got := c.RxInvalid.Load(); got != 1 {
				t.Fatalf("len %d: rx_invalid %d, want 1", l, got)
			}
			if v, ok := rec.find(slog.LevelWarn, "bad framing; closing the connection", "len"); !ok || v.Uint64() != uint64(l) {
				t.Fatalf("len %d: no warning with the length (got %v)", l, v)
			}
			// The connection is closed: the peer sees EOF.
			q.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := q.Read(make([]byte, 1)); err == nil {
				t.Fatalf("len %d: connection still open", l)
			}
			// And the port stays dead, without hanging.
			if _, err := c.ReadFrames(frames(t, 1, 2048)); err == nil {
				t.Fatal("ReadFrames after bad framing: no error")
			}
		}
	}
}

func TestPeerHangsUp(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			for _, tc := range []struct {
				name      string
				tail      []byte
				truncated uint64
			}{
				{"clean", nil, 0},
				{"mid header", []byte{0, 0}, 1},
				{"mid frame", append(header(60), make([]byte, 30)...), 1},
			} {
				c, q := listenPair(t, network, Options{})
				good := ethFrame(1, 60)
				if _, err := q.Write(append(encode(good), tc.tail...)); err != nil {
					t.Fatal(err)
				}
				q.Close()
				got, err := readFrames(t, c, 2, frame.DefaultSlotSize, 5*time.Second)
				sameFrames(t, got, [][]byte{good})
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: ReadFrames error %v, want EOF", tc.name, err)
				}
				if got := c.IngressDrops[ports.DropBadFraming].Load(); got != tc.truncated {
					t.Fatalf("%s: bad_framing %d, want %d", tc.name, got, tc.truncated)
				}
				if c.LinkUp.Load() {
					t.Fatalf("%s: link still up", tc.name)
				}
				// The writer learns it too, without an error to count.
				out := frames(t, 2, frame.DefaultSlotSize)
				setFrame(out[0], good)
				setFrame(out[1], good)
				if n, err := c.WriteFrames(out); n != 0 || !isClosed(err) {
					t.Fatalf("%s: WriteFrames after hang-up: %d, %v", tc.name, n, err)
				}
				if got := c.EgressDrops[ports.DropLinkDown].Load(); got != 2 {
					t.Fatalf("%s: link_down %d, want 2", tc.name, got)
				}
			}
		})
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	dialled := func(t *testing.T) ports.Port {
		c, err := Dial("unix", filepath.Join(t.TempDir(), "nobody.sock"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	accepted := func(t *testing.T) ports.Port { c, _ := listenPair(t, "tcp", Options{}); return c }
	for name, open := range map[string]func(*testing.T) ports.Port{"dial": dialled, "accepted": accepted} {
		t.Run(name, func(t *testing.T) {
			p := open(t)
			errc := make(chan error, 1)
			go func() {
				_, err := p.ReadFrames(frames(t, 4, 2048))
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond)
			p.Close()
			select {
			case err := <-errc:
				if !isClosed(err) {
					t.Fatalf("ReadFrames: %v, want net.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not unblock ReadFrames")
			}
			if err := p.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

func TestUnixSocketFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "zsw.sock")

	// A stale socket: bound, never unlinked, nobody listening.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	l, err := Listen("unix", path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if l.Addr() != path {
		t.Fatalf("Addr %q, want %q", l.Addr(), path)
	}

	// A live one is refused, and left alone.
	if _, err := Listen("unix", path, Options{}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen on a live socket: %v, want address in use", err)
	}
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("live socket damaged: %v", err)
	} else {
		c.Close()
		if p, err := l.Accept(); err == nil {
			p.Close()
		}
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket file: %v", err)
	}
	if _, err := l.Accept(); !isClosed(err) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Anything but a socket is refused and kept.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := Listen("unix", file, Options{}); err == nil {
		t.Fatal("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file damaged")
	}

	// Close removes only its own file, not one that replaced it.
	l, err = Listen("unix", path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte("new"), 0o600)
	l.Close()
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatal("Close removed a file it did not create")
	}
}

func TestListenTCPAddr(t *testing.T) {
	l := listen(t, "tcp", Options{})
	ap, err := net.ResolveTCPAddr("tcp", l.Addr())
	if err != nil || ap.Port == 0 {
		t.Fatalf("Addr %q: %v", l.Addr(), err)
	}
	if _, err := Listen("udp", "127.0.0.1:0", Options{}); err == nil {
		t.Fatal("Listen udp: no error")
	}
	errc := make(chan error, 1)
	go func() { _, err := l.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if !isClosed(err) {
			t.Fatalf("Accept: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
}

func TestBatchSizeOption(t *testing.T) {
	c, q := listenPair(t, "unix", Options{BatchSize: 4})
	if c.BatchSize() != 4 {
		t.Fatalf("BatchSize %d", c.BatchSize())
	}
	var want [][]byte
	for i := range 10 {
		want = append(want, ethFrame(i, 60))
	}
	q.send(t, want...)
	fs := frames(t, 64, 2048)
	for got := 0; got < len(want); {
		n, err := c.ReadFrames(fs)
		if err != nil || n > 4 {
			t.Fatalf("ReadFrames: %d, %v", n, err)
		}
		got += n
	}
}

// TestSlowPeerListen: a peer that stops reading loses frames, counted as
// queue_full, but not its connection, and when it reads again the stream
// is intact: no frame is cut, even the one a deadline split.
func TestSlowPeerListen(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) { testSlowPeer(t, network) })
	}
}

func testSlowPeer(t *testing.T, network string) {
	const timeout = 100 * time.Millisecond
	c, q := listenPair(t, network, Options{WriteTimeout: timeout})
	out := frames(t, 64, frame.DefaultSlotSize)
	// Odd sizes make it likely that a deadline splits a frame, even a header.
	sizes := []int{1514, 1023, 61, 777}
	var sent, calls int
	start := time.Now()
	for c.EgressDrops[ports.DropQueueFull].Load() == 0 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the socket never filled up")
		}
		for i, f := range out {
			setFrame(f, ethFrame(sent+i, sizes[(sent+i)%len(sizes)]))
		}
		t0 := time.Now()
		n, err := c.WriteFrames(out)
		if err != nil {
			t.Fatalf("WriteFrames to a slow peer: %v", err)
		}
		if d := time.Since(t0); d > 10*timeout {
			t.Fatalf("WriteFrames took %v with WriteTimeout %v", d, timeout)
		}
		sent += n
		calls++
	}
	// Every frame handed in was sent or counted.
	if d := c.EgressDrops[ports.DropQueueFull].Load(); uint64(sent)+d != uint64(calls*len(out)) {
		t.Fatalf("%d sent + %d dropped ≠ %d handed in", sent, d, calls*len(out))
	}
	// The peer reads again: it gets every frame sent, whole and in order,
	// then a new one, and never a broken header.
	setFrame(out[0], ethFrame(999999, 100))
	done := make(chan error, 1)
	go func() {
		_, err := c.WriteFrames(out[:1]) // finishes the split frame first
		done <- err
	}()
	var got int
	for got < sent {
		b, err := q.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", got, sent, err)
		}
		if l := len(b); l != 1514 && l != 1023 && l != 61 && l != 777 {
			t.Fatalf("frame %d has length %d: the stream broke", got, l)
		}
		got++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := q.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(999999, 100)) {
		t.Fatalf("the frame after the stall is %d bytes, not the one sent", len(b))
	}
	if c.EgressDrops[ports.DropTxError].Load() != 0 || !c.LinkUp.Load() {
		t.Fatal("the connection was given up")
	}
}
