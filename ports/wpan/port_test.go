package wpan

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A pair makes a port and the peer QEMU would be, both closed at cleanup.
type pair func(t *testing.T) (*Port, *peer)

func pipePair(t *testing.T) (*Port, *peer) {
	p, path := openPipe(t, Options{})
	return p, qemuPipe(t, path)
}

func listenPair(t *testing.T) (*Port, *peer) {
	path := filepath.Join(t.TempDir(), "slip.sock")
	l, err := Listen("unix", path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	pp, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	p := pp.(*Port)
	t.Cleanup(func() { p.Close() })
	q := connPeer(t, c)
	return p, q
}

func dialPair(t *testing.T) (*Port, *peer) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := Dial("unix", path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "link up", p.LinkUp.Load)
	return p, connPeer(t, c)
}

func ptyPair(t *testing.T) (*Port, *peer) {
	link := filepath.Join(t.TempDir(), "ttyWPAN")
	p, err := OpenPTY(link, Options{})
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	// Open the link as a program would, with no termios of its own: the
	// raw mode the port set must carry every byte value unchanged.
	f, err := os.OpenFile(link, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	q := newPeer(f, f, f.SetReadDeadline, f.Close)
	t.Cleanup(func() { q.Close() })
	return p, q
}

func connPeer(t *testing.T, c net.Conn) *peer {
	q := newPeer(c, c, c.SetReadDeadline, c.Close)
	t.Cleanup(func() { q.Close() })
	return q
}

var pairs = []struct {
	name string
	make pair
}{
	{"pipe", pipePair},
	{"unix-listen", listenPair},
	{"unix-dial", dialPair},
	{"pty", ptyPair},
}

// allBytes returns PSDUs that together carry every byte value, among them
// the start byte, CR, LF, XON/XOFF and ^C, which a cooked tty would eat.
func allBytes() [][]byte {
	var out [][]byte
	for i := 0; i < 256; i += 127 {
		b := make([]byte, 0, MaxPSDU)
		for j := i; j < min(i+MaxPSDU, 256); j++ {
			b = append(b, byte(j))
		}
		out = append(out, b)
	}
	return out
}

// TestContract is porttest's contract for 802.15.4 sizes (porttest sends
// Ethernet frames up to the 2048-byte slot, which LEN cannot carry).
func TestContract(t *testing.T) {
	for _, pc := range pairs {
		t.Run(pc.name, func(t *testing.T) {
			t.Run("PeerToPort", func(t *testing.T) {
				p, q := pc.make(t)
				want := append(allBytes(), psdu(1, 1), psdu(2, 5), psdu(3, 127), []byte{0x02, 0x00, 0x2A})
				for _, b := range want {
					if err := q.Send(b); err != nil {
						t.Fatal(err)
					}
				}
				same(t, "port received", readN(t, p, len(want)), want)
				checkCounters(t, p)
			})
			t.Run("PortToPeer", func(t *testing.T) {
				p, q := pc.make(t)
				var want [][]byte
				want = append(want, allBytes()...)
				for i := range 200 { // 200 frames, several 4096-byte writes
					want = append(want, psdu(i, 1+i%MaxPSDU))
				}
				fs := frames(t, len(want))
				setFrames(fs, want)
				if n, err := p.WriteFrames(fs); n != len(want) || err != nil {
					t.Fatalf("WriteFrames = %d, %v; want %d, nil", n, err, len(want))
				}
				var got [][]byte
				for range want {
					got = append(got, q.recv(t))
				}
				same(t, "peer received", got, want)
				checkCounters(t, p)
			})
			t.Run("BadOut", func(t *testing.T) {
				p, q := pc.make(t)
				fs := make([]*frame.Frame, 3)
				frame.NewPool(3, frame.DefaultSlotSize).Get(fs)
				fs[0].SetLen(0)
				fs[1].SetLen(MaxPSDU + 1)
				fs[2].SetLen(copy(fs[2].Space(), psdu(1, 9)))
				if n, err := p.WriteFrames(fs); n != 1 || err != nil {
					t.Fatalf("WriteFrames([empty, 128 bytes, 9 bytes]) = %d, %v; want 1, nil", n, err)
				}
				if b := q.recv(t); !bytes.Equal(b, psdu(1, 9)) {
					t.Fatalf("peer received % x", b)
				}
				s := p.Counters()
				if s.EgressDrops[ports.DropRunt].Load() != 1 || s.EgressDrops[ports.DropOversize].Load() != 1 {
					t.Fatalf("runt %d, oversize %d; want 1, 1", s.EgressDrops[ports.DropRunt].Load(), s.EgressDrops[ports.DropOversize].Load())
				}
				checkCounters(t, p)
			})
			t.Run("GarbageIn", func(t *testing.T) {
				p, q := pc.make(t)
				q.sendRaw(t, []byte{0, 0, 0})
				q.sendRaw(t, []byte("noise\xF0\x00\xF0\x99"))
				q.Send(psdu(1, 12))
				same(t, "port received", readN(t, p, 1), [][]byte{psdu(1, 12)})
				if b := p.IngressDrops[ports.DropBadFraming].Load(); b != 1 {
					t.Fatalf("bad_framing %d, want 1 for one garbage run", b)
				}
				checkCounters(t, p)
			})
			t.Run("CloseUnblocksRead", func(t *testing.T) {
				p, _ := pc.make(t)
				errc := make(chan error, 1)
				go func() {
					_, err := p.ReadFrames(frames(t, 4))
					errc <- err
				}()
				time.Sleep(50 * time.Millisecond)
				p.Close()
				select {
				case err := <-errc:
					if !errors.Is(err, net.ErrClosed) {
						t.Fatalf("ReadFrames after Close: %v, want net.ErrClosed", err)
					}
				case <-time.After(2 * time.Second):
					t.Fatal("Close did not unblock ReadFrames")
				}
				p.Close()
				fs := frames(t, 2)
				setFrames(fs, [][]byte{psdu(1, 5), psdu(2, 5)})
				if n, err := p.WriteFrames(fs); n != 0 || !errors.Is(err, net.ErrClosed) {
					t.Fatalf("WriteFrames after Close = %d, %v", n, err)
				}
				if d := p.EgressDrops[ports.DropLinkDown].Load(); d != 2 {
					t.Fatalf("link_down %d after Close, want 2", d)
				}
			})
		})
	}
}

// checkCounters checks that drops a port sees on input count in RxInvalid
// and IngressDrops alike, and that it left the engine's counters alone.
func checkCounters(t *testing.T, p ports.Port) {
	t.Helper()
	s := p.Counters()
	var in uint64
	for r := range ports.NumDropReasons {
		in += s.IngressDrops[r].Load()
	}
	if inv := s.RxInvalid.Load(); inv != in {
		t.Errorf("rx_invalid %d != ingress drops %d", inv, in)
	}
	if s.RxFrames.Load()+s.TxFrames.Load()+s.Forwarded.Load()+s.Enqueued.Load() != 0 {
		t.Errorf("the port counted engine counters")
	}
}

func TestPipeCreatesFIFOs(t *testing.T) {
	p, path := openPipe(t, Options{})
	if !isFIFO(path+".in") || !isFIFO(path+".out") {
		t.Fatal("OpenPipe did not create both FIFOs")
	}
	p.Close()
	if !isFIFO(path+".in") || !isFIFO(path+".out") {
		t.Fatal("Close removed the FIFOs; a running QEMU still holds them")
	}
	// Opening again reuses them; a regular file is refused.
	p2, err := OpenPipe(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
	bad := filepath.Join(t.TempDir(), "x")
	os.WriteFile(bad+".out", nil, 0o600)
	if p3, err := OpenPipe(bad, Options{}); err == nil {
		p3.Close()
		t.Fatal("OpenPipe accepted a regular file")
	}
}

// TestPipePeerRestart plays a QEMU that exits and starts again on the same
// FIFOs: the port neither ends nor loses frames of the new instance.
func TestPipePeerRestart(t *testing.T) {
	p, path := openPipe(t, Options{})
	for run := range 3 {
		q := qemuPipe(t, path)
		q.Send(psdu(run, 20))
		same(t, "port received", readN(t, p, 1), [][]byte{psdu(run, 20)})
		fs := frames(t, 1)
		setFrames(fs, [][]byte{psdu(run+10, 30)})
		if n, err := p.WriteFrames(fs); n != 1 || err != nil {
			t.Fatalf("run %d: WriteFrames = %d, %v", run, n, err)
		}
		if b := q.recv(t); !bytes.Equal(b, psdu(run+10, 30)) {
			t.Fatalf("run %d: peer received % x", run, b)
		}
		q.Close()
	}
	if !p.LinkUp.Load() {
		t.Fatal("pipe port lost LinkUp")
	}
}

// TestPipeFull plays a QEMU that reads nothing: once the FIFO is full,
// WriteFrames drops whole frames as queue_full within WriteTimeout, and
// what the FIFO holds is whole frames only.
func TestPipeFull(t *testing.T) {
	p, path := openPipe(t, Options{WriteTimeout: 20 * time.Millisecond})
	fs := frames(t, 64)
	var want [][]byte
	for i := range fs {
		want = append(want, psdu(i, MaxPSDU))
	}
	var sent, calls int
	for p.EgressDrops[ports.DropQueueFull].Load() == 0 && calls < 100 {
		setFrames(fs, want)
		n, err := p.WriteFrames(fs)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		calls++
	}
	dropped := p.EgressDrops[ports.DropQueueFull].Load()
	if dropped == 0 {
		t.Fatal("a full FIFO dropped nothing")
	}
	if uint64(sent)+dropped != uint64(calls*len(fs)) {
		t.Fatalf("sent %d + dropped %d != %d written", sent, dropped, calls*len(fs))
	}
	// Now QEMU reads: exactly the frames counted as sent, all whole.
	q := qemuPipe(t, path)
	for i := range sent {
		if b := q.recv(t); !bytes.Equal(b, want[i%len(want)]) {
			t.Fatalf("frame %d in the FIFO is % x", i, b[:min(8, len(b))])
		}
	}
	if b, err := q.Recv(100 * time.Millisecond); err == nil {
		t.Fatalf("the FIFO held more than was counted as sent: % x", b[:min(8, len(b))])
	}
	if q.dec.Partial() {
		t.Fatal("the FIFO ends inside a frame")
	}
}

func TestListenPeerHangsUp(t *testing.T) {
	p, q := listenPair(t)
	q.sendRaw(t, encode(psdu(1, 10))[:5]) // cut short
	q.Close()
	fs := frames(t, 4)
	if _, err := p.ReadFrames(fs); err == nil {
		t.Fatal("ReadFrames after hang-up: no error")
	}
	if b := p.IngressDrops[ports.DropBadFraming].Load(); b != 1 {
		t.Fatalf("a frame cut short by hang-up: bad_framing %d, want 1", b)
	}
}

// TestDialRedial restarts the QEMU a dialled port connects to: the port
// connects again by itself.
func TestDialRedial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qemu.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Dial("unix", path, Options{BackoffMin: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 4)
	readerDone := make(chan struct{})
	go func() { // the engine's ingress: reads across connections
		defer close(readerDone)
		fs := frames(t, 4)
		for {
			n, err := p.ReadFrames(fs)
			for _, f := range fs[:n] {
				got <- bytes.Clone(f.Bytes())
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { p.Close(); <-readerDone }()
	for run := range 2 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		q := connPeer(t, c)
		q.Send(psdu(run, 7))
		select {
		case b := <-got:
			if !bytes.Equal(b, psdu(run, 7)) {
				t.Fatalf("run %d: port received % x", run, b)
			}
		case <-time.After(wait):
			t.Fatalf("run %d: nothing received", run)
		}
		q.Close()
		waitFor(t, "link down", func() bool { return !p.LinkUp.Load() })
		if run == 0 {
			ln.Close() // QEMU gone for a while: dials fail
			time.Sleep(100 * time.Millisecond)
			os.Remove(path)
			if ln, err = net.Listen("unix", path); err != nil {
				t.Fatal(err)
			}
		}
	}
	ln.Close()
	if c, d, e := p.Connects.Load(), p.Disconnects.Load(), p.Errors.Load(); c != 2 || d != 2 || e == 0 {
		t.Fatalf("connects %d, disconnects %d, failed dials %d; want 2, 2, some", c, d, e)
	}
	// Down: writes drop as link_down without an error.
	fs := frames(t, 1)
	setFrames(fs, [][]byte{psdu(1, 5)})
	if n, err := p.WriteFrames(fs); n != 0 || err != nil {
		t.Fatalf("WriteFrames while down = %d, %v", n, err)
	}
}

// TestPTYPeerCloses closes the slave and opens it again: the port waits
// for the next peer without spinning or ending.
func TestPTYPeerCloses(t *testing.T) {
	p, q := ptyPair(t)
	q.Send(psdu(1, 8))
	same(t, "port received", readN(t, p, 1), [][]byte{psdu(1, 8)})
	if !p.LinkUp.Load() {
		t.Fatal("LinkUp false with a peer sending")
	}
	q.Close()
	errc := make(chan error, 1)
	got := make(chan []byte, 1)
	go func() {
		fs := frames(t, 4)
		n, err := p.ReadFrames(fs)
		if n > 0 {
			got <- bytes.Clone(fs[0].Bytes())
		}
		errc <- err
	}()
	waitFor(t, "link down", func() bool { return !p.LinkUp.Load() })
	f, err := os.OpenFile(p.Slave(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(encode(psdu(2, 8)))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, psdu(2, 8)) {
		t.Fatalf("after the peer came back: % x", b)
	}
	if p.Disconnects.Load() != 1 {
		t.Fatalf("disconnects %d, want 1", p.Disconnects.Load())
	}
}

func TestPTYSymlink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "tty")
	os.Symlink("/nonexistent", link) // stale, from an earlier run
	p, err := OpenPTY(link, Options{})
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	if target, _ := os.Readlink(link); target != p.Slave() {
		t.Fatalf("link points to %q, want %q", target, p.Slave())
	}
	p.Close()
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the symlink: %v", err)
	}
}

func TestWriteAllocs(t *testing.T) {
	p, q := pipePair(t)
	_ = q
	fs := frames(t, 16)
	for i, f := range fs {
		f.SetLen(copy(f.Space(), psdu(i, 40)))
	}
	drain := make([]byte, 1<<16)
	allocs := testing.AllocsPerRun(200, func() {
		if n, _ := p.WriteFrames(fs); n != len(fs) {
			t.Fatalf("wrote %d", n)
		}
		q.r.Read(drain)
	})
	if allocs != 0 {
		t.Fatalf("WriteFrames allocates %.1f times per call", allocs)
	}
}
