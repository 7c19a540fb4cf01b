package dgram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

var lo4 = netip.MustParseAddrPort("127.0.0.1:0")

// A qemu is the far end of a port: a plain socket bound the way QEMU binds
// its local address.
type qemu struct {
	net.PacketConn
	to net.Addr // the port's address
}

// Send sends one datagram to the port.
func (q *qemu) Send(b []byte) error {
	_, err := q.WriteTo(b, q.to)
	return err
}

// Recv returns the next datagram, or an error wrapping
// os.ErrDeadlineExceeded after timeout.
func (q *qemu) Recv(timeout time.Duration) ([]byte, error) {
	buf := make([]byte, 70000)
	q.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := q.ReadFrom(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func (q *qemu) send(t testing.TB, b []byte) {
	t.Helper()
	if err := q.Send(b); err != nil {
		t.Fatalf("qemu send: %v", err)
	}
}

// recv returns the next datagram, or nil after timeout.
func (q *qemu) recv(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	b, err := q.Recv(timeout)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatalf("qemu recv: %v", err)
	}
	return b
}

func newUDP(t testing.TB, opt Options) (*Conn, *qemu) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenUDP(lo4, pc.LocalAddr().(*net.UDPAddr).AddrPort(), opt)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); pc.Close() })
	return c, &qemu{PacketConn: pc, to: c.LocalAddr()}
}

func newUnix(t testing.TB, opt Options) (*Conn, *qemu) {
	t.Helper()
	dir := t.TempDir()
	zpath, qpath := filepath.Join(dir, "zsw.sock"), filepath.Join(dir, "q1.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenUnix(zpath, qpath, opt)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); pc.Close() })
	return c, &qemu{PacketConn: pc, to: c.LocalAddr()}
}

var kinds = []struct {
	name string
	open func(testing.TB, Options) (*Conn, *qemu)
}{{"udp", newUDP}, {"unix", newUnix}}

func frames(t testing.TB, n int) []*frame.Frame {
	t.Helper()
	pool := frame.NewPool(n, frame.DefaultSlotSize)
	fs := make([]*frame.Frame, n)
	if got := pool.Get(fs); got != n {
		t.Fatalf("pool gave %d frames", got)
	}
	return fs
}

func setFrame(f *frame.Frame, b []byte) { f.SetLen(copy(f.Space(), b)) }

func ethFrame(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00})
	return b
}

// readFrames reads until it has want frames or timeout passes.
func readFrames(t testing.TB, c *Conn, want int, timeout time.Duration) [][]byte {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got [][]byte
		fs := frames(t, 8)
		for len(got) < want {
			n, err := c.ReadFrames(fs)
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
		if r.err != nil {
			t.Fatalf("ReadFrames: %v", r.err)
		}
		return r.got
	case <-time.After(timeout):
		t.Fatalf("ReadFrames: no %d frames within %v", want, timeout)
		return nil
	}
}

func TestRoundTrip(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c, q := k.open(t, Options{})
			// QEMU to zswitch, sizes from a runt to a full slot.
			sizes := []int{1, 14, 60, 1514, 1518, frame.DefaultSlotSize}
			for i, s := range sizes {
				q.send(t, ethFrame(i, s))
			}
			got := readFrames(t, c, len(sizes), 5*time.Second)
			for i, s := range sizes {
				if !bytes.Equal(got[i], ethFrame(i, s)) {
					t.Fatalf("frame %d: got %d bytes, want %d", i, len(got[i]), s)
				}
			}
			// zswitch to QEMU, more frames than one batch, and more than a
			// unix socket queues: QEMU reads as they come.
			fs := frames(t, 150)
			for i, f := range fs {
				setFrame(f, ethFrame(i, 60+i))
			}
			errc := make(chan error, 1)
			go func() {
				n, err := c.WriteFrames(fs)
				if err == nil && n != len(fs) {
					err = fmt.Errorf("wrote %d of %d", n, len(fs))
				}
				errc <- err
			}()
			for i := range fs {
				if b := q.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(i, 60+i)) {
					t.Fatalf("frame %d: got %d bytes", i, len(b))
				}
			}
			if err := <-errc; err != nil {
				t.Fatalf("WriteFrames: %v", err)
			}
			if !c.LinkUp.Load() {
				t.Error("LinkUp false after successful sends")
			}
		})
	}
}

func TestUDP6(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer pc.Close()
	c, err := OpenUDP(netip.MustParseAddrPort("[::1]:0"), pc.LocalAddr().(*net.UDPAddr).AddrPort(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := &qemu{PacketConn: pc, to: c.LocalAddr()}
	q.send(t, ethFrame(1, 100))
	if got := readFrames(t, c, 1, 5*time.Second); !bytes.Equal(got[0], ethFrame(1, 100)) {
		t.Fatal("IPv6: wrong frame")
	}
	fs := frames(t, 1)
	setFrame(fs[0], ethFrame(2, 100))
	if n, err := c.WriteFrames(fs); n != 1 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if !bytes.Equal(q.recv(t, 5*time.Second), ethFrame(2, 100)) {
		t.Fatal("IPv6: wrong frame back")
	}
}

func TestOpenErrors(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:1")
	for _, tc := range []struct {
		name          string
		local, remote netip.AddrPort
	}{
		{"no remote", lo, netip.AddrPort{}},
		{"remote port 0", lo, lo4},
		{"families", lo, netip.MustParseAddrPort("[::1]:1")},
		{"multicast", lo, netip.MustParseAddrPort("230.0.0.1:1234")},
	} {
		if c, err := OpenUDP(tc.local, tc.remote, Options{}); err == nil {
			c.Close()
			t.Errorf("%s: OpenUDP succeeded", tc.name)
		}
	}
	if _, err := OpenUnix(filepath.Join(t.TempDir(), "z"), string(make([]byte, 200)), Options{}); err == nil {
		t.Error("OpenUnix accepted a 200-byte remote path")
	}
}

func TestIngressOversizeAndEmpty(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c, q := k.open(t, Options{MaxFrame: 1600})
			q.send(t, ethFrame(1, frame.DefaultSlotSize+1)) // longer than the slot
			q.send(t, ethFrame(2, 1601))                    // longer than MaxFrame
			q.send(t, nil)                                  // empty
			q.send(t, ethFrame(3, 1600))
			got := readFrames(t, c, 1, 5*time.Second)
			if len(got) != 1 || !bytes.Equal(got[0], ethFrame(3, 1600)) {
				t.Fatalf("got %d frames, first %d bytes; want only the 1600-byte one", len(got), len(got[0]))
			}
			if o, r := c.IngressDrops[ports.DropOversize].Load(), c.IngressDrops[ports.DropRunt].Load(); o != 2 || r != 1 {
				t.Errorf("ingress drops: oversize %d runt %d, want 2 and 1", o, r)
			}
			if c.RxInvalid.Load() != 3 {
				t.Errorf("RxInvalid %d, want 3", c.RxInvalid.Load())
			}
		})
	}
}

func TestEgressOversizeAndEmpty(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c, q := k.open(t, Options{MaxFrame: 1000})
			fs := frames(t, 5)
			setFrame(fs[0], ethFrame(0, 60))
			setFrame(fs[1], nil)
			setFrame(fs[2], ethFrame(2, 1001))
			setFrame(fs[3], ethFrame(3, 1000))
			setFrame(fs[4], nil)
			sent := []*frame.Frame{fs[0], fs[3]}
			n, err := c.WriteFrames(fs)
			if n != 2 || err != nil {
				t.Fatalf("WriteFrames: %d, %v; want 2, nil", n, err)
			}
			if fs[0] != sent[0] || fs[1] != sent[1] {
				t.Error("fs[:n] are not the frames sent, in order")
			}
			for _, want := range [][]byte{ethFrame(0, 60), ethFrame(3, 1000)} {
				if b := q.recv(t, 5*time.Second); !bytes.Equal(b, want) {
					t.Fatalf("got %d bytes, want %d", len(b), len(want))
				}
			}
			if b := q.recv(t, 50*time.Millisecond); b != nil {
				t.Fatalf("an extra %d-byte datagram was sent", len(b))
			}
			if o, r := c.EgressDrops[ports.DropOversize].Load(), c.EgressDrops[ports.DropRunt].Load(); o != 1 || r != 2 {
				t.Errorf("egress drops: oversize %d runt %d, want 1 and 2", o, r)
			}
		})
	}
}

// TestUDPLargestPayload: QEMU's 69632-byte frames do not fit UDP; the port
// drops what IPv4 cannot carry instead of failing the batch.
func TestUDPLargestPayload(t *testing.T) {
	c, q := newUDP(t, Options{})
	pool := frame.NewPool(2, 70000)
	fs := make([]*frame.Frame, 2)
	pool.Get(fs)
	setFrame(fs[0], ethFrame(0, maxUDP4+1))
	setFrame(fs[1], ethFrame(1, maxUDP4))
	if n, err := c.WriteFrames(fs); n != 1 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if b := q.recv(t, 5*time.Second); len(b) != maxUDP4 {
		t.Fatalf("got %d bytes", len(b))
	}
	if c.EgressDrops[ports.DropOversize].Load() != 1 {
		t.Error("oversize not counted")
	}
}

type countHandler struct {
	slog.Handler
	n atomic.Int64
}

func (h *countHandler) Handle(ctx context.Context, r slog.Record) error {
	h.n.Add(1)
	return nil
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

// TestUnixPeerAbsentThenPresent: until QEMU binds its socket, frames are
// dropped as link_down without errors or a log line per batch; then they
// flow, and again after QEMU restarts.
func TestUnixPeerAbsentThenPresent(t *testing.T) {
	dir := t.TempDir()
	zpath, qpath := filepath.Join(dir, "zsw.sock"), filepath.Join(dir, "q1.sock")
	logs := &countHandler{}
	c, err := OpenUnix(zpath, qpath, Options{Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logs.n.Store(0)
	fs := frames(t, 4)
	for i, f := range fs {
		setFrame(f, ethFrame(i, 60))
	}
	for range 100 {
		if n, err := c.WriteFrames(fs); n != 0 || err != nil {
			t.Fatalf("WriteFrames to an absent peer: %d, %v; want 0, nil", n, err)
		}
	}
	if d := c.EgressDrops[ports.DropLinkDown].Load(); d != 400 {
		t.Errorf("link_down drops %d, want 400", d)
	}
	if c.LinkUp.Load() {
		t.Error("LinkUp with no peer")
	}
	if n := logs.n.Load(); n != 1 {
		t.Errorf("%d log lines for 100 failed batches, want 1", n)
	}
	if a := testing.AllocsPerRun(100, func() { c.WriteFrames(fs) }); a != 0 {
		t.Errorf("WriteFrames to an absent peer: %v allocs, want 0", a)
	}
	base := c.EgressDrops[ports.DropLinkDown].Load()

	// A stale file: QEMU exited without unlinking (ECONNREFUSED).
	stale, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	stale.Close() // a datagram socket leaves its file behind
	if n, err := c.WriteFrames(fs); n != 0 || err != nil {
		t.Fatalf("WriteFrames to a stale socket file: %d, %v", n, err)
	}
	if d := c.EgressDrops[ports.DropLinkDown].Load() - base; d != 4 {
		t.Errorf("link_down drops %d, want 4", d)
	}

	// QEMU starts: it unlinks and binds its path.
	os.Remove(qpath)
	q, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	peer := &qemu{PacketConn: q, to: c.LocalAddr()}
	if n, err := c.WriteFrames(fs); n != 4 || err != nil {
		t.Fatalf("WriteFrames to a present peer: %d, %v", n, err)
	}
	for i := range fs {
		if b := peer.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(i, 60)) {
			t.Fatalf("frame %d wrong", i)
		}
	}
	if !c.LinkUp.Load() {
		t.Error("LinkUp false with the peer present")
	}
	peer.send(t, ethFrame(9, 60))
	if got := readFrames(t, c, 1, 5*time.Second); !bytes.Equal(got[0], ethFrame(9, 60)) {
		t.Fatal("frame from QEMU wrong")
	}

	// QEMU exits, leaving its file, and comes back.
	q.Close()
	if n, err := c.WriteFrames(fs); n != 0 || err != nil || c.LinkUp.Load() {
		t.Fatalf("after the peer left: %d, %v, up %v", n, err, c.LinkUp.Load())
	}
	os.Remove(qpath)
	q, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, err := c.WriteFrames(fs); n != 4 || err != nil {
		t.Fatalf("after the peer restarted: %d, %v", n, err)
	}
	if n := logs.n.Load(); n != 4 {
		t.Errorf("%d log lines for down, up, down, up; want 4", n)
	}

	// QEMU restarts between two batches: the port's connected socket still
	// points at the old one, finds it gone and reconnects, losing nothing.
	q.Close()
	os.Remove(qpath)
	q, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	drops := c.EgressDrops[ports.DropLinkDown].Load()
	if n, err := c.WriteFrames(fs); n != 4 || err != nil {
		t.Fatalf("after a quick restart: %d, %v", n, err)
	}
	peer = &qemu{PacketConn: q, to: c.LocalAddr()}
	for i := range fs {
		if b := peer.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(i, 60)) {
			t.Fatalf("after a quick restart: frame %d wrong", i)
		}
	}
	if d := c.EgressDrops[ports.DropLinkDown].Load(); d != drops || !c.LinkUp.Load() {
		t.Errorf("a quick restart dropped %d frames, up %v", d-drops, c.LinkUp.Load())
	}
}

// TestUnixFullPeerParks: a QEMU that does not read fills its socket's
// queue; WriteFrames then waits on the netpoller without burning CPU, goes
// on when the QEMU reads, and Close wakes it.
func TestUnixFullPeerParks(t *testing.T) {
	c, q := newUnix(t, Options{})
	fs := frames(t, 64)
	for i, f := range fs {
		setFrame(f, ethFrame(i, 100))
	}
	errc := make(chan error, 1)
	go func() {
		n, err := c.WriteFrames(fs)
		if err == nil && n != len(fs) {
			err = fmt.Errorf("wrote %d of %d", n, len(fs))
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	before := cpuTime(t)
	time.Sleep(300 * time.Millisecond)
	if used := cpuTime(t) - before; used > 100*time.Millisecond {
		t.Errorf("a blocked WriteFrames used %v of CPU in 300ms: it spins", used)
	}
	select {
	case err := <-errc:
		t.Fatalf("WriteFrames returned while the peer was full: %v", err)
	default:
	}
	for i := range fs {
		if b := q.recv(t, 5*time.Second); !bytes.Equal(b, ethFrame(i, 100)) {
			t.Fatalf("frame %d wrong", i)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}

	// Full again, then Close.
	go func() {
		_, err := c.WriteFrames(fs)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("WriteFrames after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake WriteFrames")
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestUnixStaleSocketFile(t *testing.T) {
	dir := t.TempDir()
	zpath := filepath.Join(dir, "zsw.sock")
	old, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: zpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	old.Close() // a datagram socket leaves its file behind
	c, err := OpenUnix(zpath, filepath.Join(dir, "q.sock"), Options{})
	if err != nil {
		t.Fatalf("OpenUnix over a stale socket file: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(zpath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}

	// Anything but a socket is left alone.
	if err := os.WriteFile(zpath, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := OpenUnix(zpath, filepath.Join(dir, "q.sock"), Options{}); err == nil {
		c.Close()
		t.Fatal("OpenUnix replaced a regular file")
	}
	if b, _ := os.ReadFile(zpath); string(b) != "keep" {
		t.Fatal("regular file damaged")
	}
	os.Remove(zpath)

	// A socket file that replaced ours meanwhile belongs to someone else.
	c, err = OpenUnix(zpath, filepath.Join(dir, "q.sock"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(zpath)
	other, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: zpath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c.Close()
	if _, err := os.Lstat(zpath); err != nil {
		t.Errorf("Close removed a socket file it did not create: %v", err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			c, _ := k.open(t, Options{})
			errc := make(chan error, 1)
			go func() {
				_, err := c.ReadFrames(frames(t, 4))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("ReadFrames after Close: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFrames still blocked after Close")
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			fs := frames(t, 1)
			setFrame(fs[0], ethFrame(0, 60))
			if _, err := c.WriteFrames(fs); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("WriteFrames after Close: %v", err)
			}
			if _, err := c.ReadFrames(fs); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadFrames after Close: %v", err)
			}
		})
	}
}

func TestString(t *testing.T) {
	c, err := OpenUDP(netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("127.0.0.1:5556"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := fmt.Sprintf("dgram udp:%v->127.0.0.1:5556", c.LocalAddr())
	if c.String() != want {
		t.Errorf("String() = %q, want %q", c.String(), want)
	}
	if c.BatchSize() != DefaultBatchSize {
		t.Errorf("BatchSize %d", c.BatchSize())
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			// Two ports facing each other.
			a, b := portPair(t, k.name)
			out, in := frames(t, 8), frames(t, 8)
			for i, f := range out {
				setFrame(f, ethFrame(i, 100))
			}
			readAll := func() {
				for got := 0; got < len(out); {
					n, err := b.ReadFrames(in[:len(out)-got])
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			}
			allocs := testing.AllocsPerRun(200, func() {
				if n, err := a.WriteFrames(out); n != len(out) || err != nil {
					t.Fatalf("WriteFrames: %d, %v", n, err)
				}
				readAll()
			})
			if allocs != 0 {
				t.Fatalf("%v allocs per batch, want 0", allocs)
			}
			// The engine's direct writes, once WriteFrames reached the peer.
			allocs = testing.AllocsPerRun(200, func() {
				if n, cut := a.TryWriteFrames(out); n != len(out) || cut {
					t.Fatalf("TryWriteFrames: %d, %v", n, cut)
				}
				readAll()
			})
			if allocs != 0 {
				t.Fatalf("TryWriteFrames: %v allocs per batch, want 0", allocs)
			}
		})
	}
}

// portPair returns two ports of a kind that send to each other.
func portPair(t testing.TB, kind string) (a, b *Conn) {
	t.Helper()
	var err error
	switch kind {
	case "udp":
		// Find two free ports by binding, then reuse them.
		p1, p2 := freeUDP(t), freeUDP(t)
		if a, err = OpenUDP(p1, p2, Options{}); err != nil {
			t.Fatal(err)
		}
		if b, err = OpenUDP(p2, p1, Options{}); err != nil {
			t.Fatal(err)
		}
	case "unix":
		dir := t.TempDir()
		pa, pb := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
		if a, err = OpenUnix(pa, pb, Options{}); err != nil {
			t.Fatal(err)
		}
		if b, err = OpenUnix(pb, pa, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func freeUDP(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}
