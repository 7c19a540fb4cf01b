package slip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// refEncode is SLIP as RFC 1055 spells it, one byte at a time, with the
// leading End Zephyr adds: the oracle for AppendFrame.
func refEncode(fs ...[]byte) []byte {
	var out []byte
	for _, f := range fs {
		out = append(out, 0xC0)
		for _, c := range f {
			switch c {
			case 0xC0:
				out = append(out, 0xDB, 0xDC)
			case 0xDB:
				out = append(out, 0xDB, 0xDD)
			default:
				out = append(out, c)
			}
		}
		out = append(out, 0xC0)
	}
	return out
}

// refResult is what a stream decodes to, according to refDecode.
type refResult struct {
	frames   [][]byte
	bad      int
	oversize int
	partial  bool // the stream ends inside a packet still good
}

// refDecode is the obvious decoder, given the whole stream at once: the
// oracle for Decoder.Decode fed in pieces. It splits the stream at every
// End, then decodes each packet byte by byte: the first fault found in
// order (a bad escape, or a byte past limit) decides its fate.
func refDecode(data []byte, limit int) refResult {
	var r refResult
	pkts := bytes.Split(data, []byte{0xC0})
	for i, pkt := range pkts {
		last := i == len(pkts)-1 // no End after it: the stream ends inside it
		if len(pkt) == 0 {
			continue
		}
		var f []byte
		fate := "frame"
	scan:
		for j := 0; j < len(pkt); j++ {
			c := pkt[j]
			if c == 0xDB {
				if j++; j == len(pkt) {
					if !last {
						fate = "bad" // Esc End
					}
					break
				}
				switch pkt[j] {
				case 0xDC:
					c = 0xC0
				case 0xDD:
					c = 0xDB
				default:
					fate = "bad"
					break scan
				}
			}
			if len(f) == limit {
				fate = "oversize"
				break
			}
			f = append(f, c)
		}
		switch {
		case fate == "bad":
			r.bad++
		case fate == "oversize":
			r.oversize++
		case last:
			r.partial = true
		default:
			r.frames = append(r.frames, f)
		}
	}
	return r
}

// A peer is the far end of a port speaking SLIP the reference way: QEMU's
// serial port as Zephyr drives it.
type peer struct {
	rw interface {
		io.ReadWriteCloser
		SetReadDeadline(time.Time) error
	}
	buf []byte // received, not yet made into frames
}

// Send writes one frame.
func (q *peer) Send(b []byte) error {
	_, err := q.rw.Write(refEncode(b))
	return err
}

// Recv returns the next non-empty packet, or fails with an error
// wrapping os.ErrDeadlineExceeded after timeout.
func (q *peer) Recv(timeout time.Duration) ([]byte, error) {
	q.rw.SetReadDeadline(time.Now().Add(timeout))
	for {
		for {
			i := bytes.IndexByte(q.buf, 0xC0)
			if i < 0 {
				break
			}
			pkt := q.buf[:i]
			q.buf = q.buf[i+1:]
			if len(pkt) == 0 {
				continue
			}
			r := refDecode(append(append([]byte{0xC0}, pkt...), 0xC0), 1<<20)
			if len(r.frames) != 1 {
				return nil, errors.New("peer: bad packet from the port")
			}
			return r.frames[0], nil
		}
		var tmp [64 << 10]byte
		n, err := q.rw.Read(tmp[:])
		q.buf = append(q.buf, tmp[:n]...)
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

func (q *peer) Close() error { return q.rw.Close() }

func (q *peer) send(t testing.TB, b ...[]byte) {
	t.Helper()
	if _, err := q.rw.Write(refEncode(b...)); err != nil {
		t.Fatalf("peer send: %v", err)
	}
}

func (q *peer) recv(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	b, err := q.Recv(timeout)
	if err != nil {
		t.Fatalf("peer recv: %v", err)
	}
	return b
}

// openFile opens path non-blocking, in the runtime poller, as a peer
// opens a tty.
func openFile(t testing.TB, path string) *os.File {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return os.NewFile(uintptr(fd), path)
}

func frames(t testing.TB, n, slot int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	if got := frame.NewPool(n, slot).Get(fs); got != n {
		t.Fatalf("pool gave %d frames", got)
	}
	return fs
}

func setFrame(f *frame.Frame, b []byte) { f.SetLen(copy(f.Space(), b)) }

// ethFrame is frame i of size bytes, broadcast; its payload holds both
// SLIP specials, so every frame exercises escaping.
func ethFrame(i, size int) []byte {
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(i + j)
	}
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x5e, 0x00, 0x53, byte(i), 0x08, 0x00})
	return b
}

// listenPair listens on a unix socket, connects a plain socket to it and
// returns the accepted port and the socket as a peer.
func listenPair(t testing.TB, opt Options) (*Port, *peer) {
	t.Helper()
	l := listen(t, opt)
	c, err := net.Dial("unix", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	sp := p.(*Port)
	t.Cleanup(func() { sp.Close(); c.Close() })
	return sp, &peer{rw: c.(*net.UnixConn)}
}

func listen(t testing.TB, opt Options) *Listener {
	t.Helper()
	l, err := Listen("unix", filepath.Join(t.TempDir(), "slip.sock"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// qemuServer listens like QEMU with -serial unix:PATH,server=on.
func qemuServer(t testing.TB, path string) (net.Listener, func() *peer) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, func() *peer {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &peer{rw: c.(*net.UnixConn)}
	}
}

func dial(t testing.TB, path string, opt Options) *Port {
	t.Helper()
	p, err := Dial("unix", path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func openPTYPort(t testing.TB, opt Options) (*Port, string) {
	t.Helper()
	link := filepath.Join(t.TempDir(), "slip.dev")
	p, err := OpenPTY(link, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, link
}

// readFrames reads until it has want frames, an error, or timeout.
func readFrames(t testing.TB, p ports.Port, want int, timeout time.Duration) ([][]byte, error) {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	fs := frames(t, 64, frame.DefaultSlotSize)
	go func() {
		var got [][]byte
		for len(got) < want {
			n, err := p.ReadFrames(fs)
			for _, f := range fs[:n] {
				got = append(got, bytes.Clone(f.Bytes()))
			}
			if err != nil {
				done <- result{got, err}
				return
			}
		}
		done <- result{got, nil}
	}()
	select {
	case r := <-done:
		return r.got, r.err
	case <-time.After(timeout):
		p.Close() // unblock the reader, so it does not leak
		r := <-done
		t.Fatalf("read %d of %d frames in %v", len(r.got), want, timeout)
		return nil, nil
	}
}

func mustRead(t testing.TB, p ports.Port, want ...[]byte) {
	t.Helper()
	got, err := readFrames(t, p, len(want), 5*time.Second)
	if err != nil {
		t.Fatalf("after %d frames: %v", len(got), err)
	}
	sameFrames(t, got, want)
}

func sameFrames(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: got %d bytes % x..., want %d bytes % x...", i,
				len(got[i]), got[i][:min(16, len(got[i]))], len(want[i]), want[i][:min(16, len(want[i]))])
		}
	}
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rxLoop reads p for the rest of the test, as the engine does, and
// delivers every frame on the channel it returns. It stops when p closes.
func rxLoop(t testing.TB, p ports.Port) <-chan []byte {
	t.Helper()
	rx := make(chan []byte, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fs := frames(t, 16, frame.DefaultSlotSize)
		for {
			n, err := p.ReadFrames(fs)
			for _, f := range fs[:n] {
				rx <- bytes.Clone(f.Bytes())
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { p.Close(); <-done })
	return rx
}

// expect waits for the next frame from rxLoop and checks it is want.
func expect(t testing.TB, rx <-chan []byte, want []byte) {
	t.Helper()
	select {
	case got := <-rx:
		if !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes % x..., want %d bytes % x...", len(got), got[:min(16, len(got))], len(want), want[:min(16, len(want))])
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no frame in 5s")
	}
}
