package slip

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

func TestArgs(t *testing.T) {
	if p, err := Dial("udp", "127.0.0.1:1", Options{}); err == nil {
		p.Close()
		t.Error("Dial udp: no error")
	}
	if p, err := Dial("unix", "", Options{}); err == nil {
		p.Close()
		t.Error("Dial without an address: no error")
	}
	if p, err := OpenTTY("/dev/null", 0, Options{}); err == nil {
		p.Close()
		t.Error("OpenTTY at 0 baud: no error")
	}
	if p, err := OpenPTY("", Options{}); err == nil {
		p.Close()
		t.Error("OpenPTY without a path: no error")
	}
	if _, err := Listen("udp", "x", Options{}); err == nil {
		t.Error("Listen udp: no error")
	}
}

// TestListenerQEMURestarts plays QEMU with -serial unix:PATH restarting:
// the first client sends a frame and dies in the middle of the next; its
// port reports the end and counts the cut frame, and the next client
// becomes a new port that works.
func TestListenerQEMURestarts(t *testing.T) {
	l := listen(t, Options{})
	a, b := ethFrame(1, 60), ethFrame(2, 1514)

	c1, err := net.Dial("unix", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	wire := refEncode(a, b)
	c1.Write(wire[:len(wire)-100])
	c1.Close()
	got, err := readFrames(t, p1, 2, 5*time.Second)
	sameFrames(t, got, [][]byte{a})
	if !errors.Is(err, io.EOF) {
		t.Fatalf("ReadFrames after the peer left: %v, want io.EOF", err)
	}
	if d := p1.Counters().IngressDrops[ports.DropBadFraming].Load(); d != 1 {
		t.Fatalf("bad_framing %d, want 1 for the cut frame", d)
	}
	if n, err := p1.ReadFrames(frames(t, 1, frame.DefaultSlotSize)); n != 0 || err == nil {
		t.Fatalf("ReadFrames on a finished port: %d, %v", n, err)
	}

	c2, err := net.Dial("unix", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	p2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if s := p2.(*Port).String(); !strings.HasSuffix(s, "#2") {
		t.Fatalf("second port is named %q", s)
	}
	q := &peer{rw: c2.(*net.UnixConn)}
	q.send(t, b)
	mustRead(t, p2, b)
	fs := frames(t, 1, frame.DefaultSlotSize)
	setFrame(fs[0], a)
	if n, err := p2.WriteFrames(fs); n != 1 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if got := q.recv(t, 5*time.Second); !bytes.Equal(got, a) {
		t.Fatal("the second client got another frame")
	}
}

func TestListenerSocketFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slip.sock")
	// A stale socket from a crashed run is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err := Listen("unix", path, Options{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if _, err := Listen("unix", path, Options{}); err == nil {
		t.Fatal("a second Listen on a live socket succeeded")
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// TestDialReconnects: QEMU with server=on restarts; the port dials again,
// says hello with a lone End, and carries frames both ways.
func TestDialReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	_, accept := qemuServer(t, path)
	p := dial(t, path, Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	rx := rxLoop(t, p)
	for round := range 2 {
		q := accept()
		var hello [1]byte
		q.rw.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(q.rw, hello[:]); err != nil || hello[0] != End {
			t.Fatalf("round %d: first byte %#x, %v; want a lone End", round, hello[0], err)
		}
		waitFor(t, "link up", p.LinkUp.Load)
		a := ethFrame(round, 100)
		q.send(t, a)
		expect(t, rx, a)
		fs := frames(t, 1, frame.DefaultSlotSize)
		setFrame(fs[0], a)
		if n, err := p.WriteFrames(fs); n != 1 || err != nil {
			t.Fatalf("WriteFrames: %d, %v", n, err)
		}
		if got := q.recv(t, 5*time.Second); !bytes.Equal(got, a) {
			t.Fatal("peer got another frame")
		}
		q.Close()
		waitFor(t, "link down", func() bool { return p.Disconnects.Load() == uint64(round+1) })
	}
	if p.Connects.Load() != 2 {
		t.Fatalf("connects %d, want 2", p.Connects.Load())
	}
}

// TestDialLinkDown: with nobody listening, writes are dropped as
// link_down without an error, and failed dials count as errors.
func TestDialLinkDown(t *testing.T) {
	p := dial(t, filepath.Join(t.TempDir(), "nobody.sock"), Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	fs := frames(t, 3, frame.DefaultSlotSize)
	for i, f := range fs {
		setFrame(f, ethFrame(i, 60))
	}
	if n, err := p.WriteFrames(fs); n != 0 || err != nil {
		t.Fatalf("WriteFrames with no peer: %d, %v", n, err)
	}
	if d := p.EgressDrops[ports.DropLinkDown].Load(); d != 3 {
		t.Fatalf("link_down %d, want 3", d)
	}
	waitFor(t, "failed dials", func() bool { return p.Errors.Load() >= 2 })
	if p.LinkUp.Load() {
		t.Fatal("link up with no peer")
	}
}

// TestPTYPeerReopens: a peer opens the pty, leaves in the middle of a
// frame, and opens it again; the port follows without losing the pty.
func TestPTYPeerReopens(t *testing.T) {
	p, link := openPTYPort(t, Options{})
	target, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(target, "/dev/pts/") {
		t.Fatalf("%s -> %q, %v", link, target, err)
	}
	time.Sleep(3 * ptyPoll / 2)
	if p.LinkUp.Load() || p.Connects.Load() != 0 {
		t.Fatal("link up before anyone opened the pty")
	}
	a, b := ethFrame(1, 60), ethFrame(2, 1514)
	fs := frames(t, 1, frame.DefaultSlotSize)
	rx := rxLoop(t, p)

	f := openFile(t, link)
	q := &peer{rw: f}
	waitFor(t, "link up", p.LinkUp.Load)
	q.send(t, a)
	expect(t, rx, a)
	wire := refEncode(b)
	f.Write(wire[:700])
	f.Close()
	waitFor(t, "link down", func() bool { return p.Disconnects.Load() == 1 })
	waitFor(t, "cut frame counted", func() bool { return p.IngressDrops[ports.DropBadFraming].Load() == 1 })
	setFrame(fs[0], a)
	if n, err := p.WriteFrames(fs); n != 0 || err != nil || p.EgressDrops[ports.DropLinkDown].Load() != 1 {
		t.Fatalf("WriteFrames with the peer away: %d, %v, link_down %d", n, err, p.EgressDrops[ports.DropLinkDown].Load())
	}

	f = openFile(t, link)
	defer f.Close()
	q = &peer{rw: f}
	waitFor(t, "link up again", p.LinkUp.Load)
	q.send(t, b)
	expect(t, rx, b)
	setFrame(fs[0], b)
	if n, err := p.WriteFrames(fs); n != 1 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if got := q.recv(t, 5*time.Second); !bytes.Equal(got, b) {
		t.Fatal("peer got another frame")
	}
	if p.Connects.Load() != 2 || p.Errors.Load() != 0 {
		t.Fatalf("connects %d errors %d, want 2 0", p.Connects.Load(), p.Errors.Load())
	}
	p.Close()
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Fatalf("symlink left after Close: %v", err)
	}
}

func TestPTYLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "slip.dev")
	if err := os.Symlink("/dev/pts/999999", link); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPTY(link, Options{})
	if err != nil {
		t.Fatalf("OpenPTY over a stale link: %v", err)
	}
	if target, _ := os.Readlink(link); target == "/dev/pts/999999" {
		t.Fatal("stale link not replaced")
	}
	p.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if p, err := OpenPTY(file, Options{}); err == nil {
		p.Close()
		t.Fatal("OpenPTY replaced a regular file")
	}
}

// TestTTYLine: OpenTTY sets the line raw at the baud asked for, standard
// or not, as the pty's termios shows.
func TestTTYLine(t *testing.T) {
	for _, tc := range []struct {
		baud int
		code uint32
	}{{115200, unix.B115200}, {9600, unix.B9600}, {250000, unix.BOTHER}} {
		_, master := ttyPair(t, tc.baud, Options{})
		rc, err := master.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var tio *unix.Termios
		rc.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS2) })
		if err != nil {
			t.Fatal(err)
		}
		if tio.Cflag&unix.CBAUD != tc.code || tio.Ospeed != uint32(tc.baud) || tio.Ispeed != uint32(tc.baud) {
			t.Errorf("baud %d: cflag baud %#x ispeed %d ospeed %d", tc.baud, tio.Cflag&unix.CBAUD, tio.Ispeed, tio.Ospeed)
		}
		if tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&(unix.PARENB|unix.CSTOPB|unix.CRTSCTS) != 0 || tio.Cflag&unix.CLOCAL == 0 {
			t.Errorf("baud %d: cflag %#x, want 8N1 CLOCAL without flow control", tc.baud, tio.Cflag)
		}
		if tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 || tio.Oflag&unix.OPOST != 0 || tio.Iflag&(unix.ICRNL|unix.IXON) != 0 {
			t.Errorf("baud %d: not raw: iflag %#x oflag %#x lflag %#x", tc.baud, tio.Iflag, tio.Oflag, tio.Lflag)
		}
	}
}

// TestTTYGoesAway: the device goes away (the pty's master closes, as a USB
// adapter unplugged) and the port keeps trying, counting failed opens.
func TestTTYGoesAway(t *testing.T) {
	master, pts, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenTTY(pts, 115200, Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rxLoop(t, p)
	waitFor(t, "link up", p.LinkUp.Load)
	master.Close()
	waitFor(t, "link down", func() bool { return p.Disconnects.Load() == 1 && !p.LinkUp.Load() })
	waitFor(t, "failed opens", func() bool { return p.Errors.Load() >= 2 })
}

func TestMaxFrame(t *testing.T) {
	p, q := listenPair(t, Options{})
	ok, big := ethFrame(1, DefaultMaxFrame), ethFrame(2, DefaultMaxFrame+1)
	q.send(t, big, ok)
	mustRead(t, p, ok)
	if d := p.IngressDrops[ports.DropOversize].Load(); d != 1 {
		t.Fatalf("oversize in %d, want 1", d)
	}
	fs := frames(t, 3, frame.DefaultSlotSize)
	setFrame(fs[0], big)
	setFrame(fs[1], ok)
	setFrame(fs[2], ethFrame(3, 13)) // a runt, but not empty: the engine's business
	if n, err := p.WriteFrames(fs); n != 2 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if d := p.EgressDrops[ports.DropOversize].Load(); d != 1 {
		t.Fatalf("oversize out %d, want 1", d)
	}
	if !bytes.Equal(q.recv(t, 5*time.Second), ok) || !bytes.Equal(q.recv(t, 5*time.Second), ethFrame(3, 13)) {
		t.Fatal("peer got other frames")
	}
}

// TestBadFramingCounted: bad escapes from the peer are counted and the
// link resynchronises at the next End.
func TestBadFramingCounted(t *testing.T) {
	p, q := listenPair(t, Options{})
	a := ethFrame(1, 100)
	q.rw.Write([]byte{0xC0, 1, 2, 0xDB, 0x99, 3, 0xC0, 0xC0, 0xC0})
	q.send(t, a)
	mustRead(t, p, a)
	if d := p.IngressDrops[ports.DropBadFraming].Load(); d != 1 || p.RxInvalid.Load() != 1 {
		t.Fatalf("bad_framing %d rx_invalid %d, want 1 1", d, p.RxInvalid.Load())
	}
}

// TestSlowPeer: a peer that stops reading loses frames, counted as
// queue_full, but not its link; when it reads again every frame it gets
// is whole, even the one a deadline cut in two.
func TestSlowPeer(t *testing.T) {
	const timeout = 100 * time.Millisecond
	p, q := listenPair(t, Options{WriteTimeout: timeout})
	out := frames(t, 64, frame.DefaultSlotSize)
	sizes := []int{1514, 1023, 61, 777}
	var sent, calls int
	start := time.Now()
	for p.EgressDrops[ports.DropQueueFull].Load() == 0 {
		if time.Since(start) > 20*time.Second {
			t.Fatal("the socket never filled up")
		}
		for i, f := range out {
			setFrame(f, ethFrame(sent+i, sizes[(sent+i)%len(sizes)]))
		}
		t0 := time.Now()
		n, err := p.WriteFrames(out)
		if err != nil {
			t.Fatalf("WriteFrames to a slow peer: %v", err)
		}
		if d := time.Since(t0); d > 10*timeout {
			t.Fatalf("WriteFrames took %v with WriteTimeout %v", d, timeout)
		}
		sent += n
		calls++
	}
	if d := p.EgressDrops[ports.DropQueueFull].Load(); uint64(sent)+d != uint64(calls*len(out)) {
		t.Fatalf("%d sent + %d dropped != %d handed in", sent, d, calls*len(out))
	}
	last := ethFrame(999, 100)
	setFrame(out[0], last)
	done := make(chan error, 1)
	go func() {
		_, err := p.WriteFrames(out[:1]) // finishes the cut frame first
		done <- err
	}()
	for got := range sent {
		b, err := q.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", got, sent, err)
		}
		if l := len(b); l != 1514 && l != 1023 && l != 61 && l != 777 {
			t.Fatalf("frame %d has length %d: a frame was cut", got, l)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b := q.recv(t, 5*time.Second); !bytes.Equal(b, last) {
		t.Fatalf("the frame after the stall is %d bytes, not the one sent", len(b))
	}
	if p.EgressDrops[ports.DropTxError].Load() != 0 || !p.LinkUp.Load() {
		t.Fatal("the link was given up")
	}
}

// TestPeerGoneAccepted: writing to an accepted port whose peer left
// returns an error, then net.ErrClosed.
func TestPeerGoneAccepted(t *testing.T) {
	p, q := listenPair(t, Options{})
	q.Close()
	fs := frames(t, 1, frame.DefaultSlotSize)
	setFrame(fs[0], ethFrame(1, 1514))
	var err error
	for range 100 {
		if _, err = p.WriteFrames(fs); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a gone peer never failed")
	}
	if _, err := p.WriteFrames(fs); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after the failure: %v, want net.ErrClosed", err)
	}
}
