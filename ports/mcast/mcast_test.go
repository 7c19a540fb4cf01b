package mcast

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

var (
	group = netip.MustParseAddrPort("230.0.0.1:1234")
	lo    = netip.MustParseAddr("127.0.0.1")
)

// netnsRunner creates a network namespace with only lo up, deleted when the
// test ends, and returns a function that runs f with the calling thread in
// it: sockets made by f belong to the namespace for good.
func netnsRunner(t *testing.T) func(f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) to create a network namespace")
	}
	name := fmt.Sprintf("zsw-test-%d-%04x", os.Getpid(), rand.Uint32()&0xffff)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return func(f func()) {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			t.Fatal(err)
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			t.Fatal(err)
		}
		defer func() {
			// A thread that cannot go back dies with the goroutine.
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		f()
	}
}

// A member is a hub member socket set up exactly as QEMU's socket backend
// does for mcast=group,localaddr=127.0.0.1.
type member struct {
	*net.UDPConn
}

func newMember(t *testing.T, reusePort bool) member {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, err error) {
		if err != nil {
			unix.Close(fd)
			t.Fatalf("member %s: %v", what, err)
		}
	}
	must("SO_REUSEADDR", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1))
	if reusePort {
		must("SO_REUSEPORT", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1))
	}
	must("bind", unix.Bind(fd, &unix.SockaddrInet4{Port: int(group.Port()), Addr: group.Addr().As4()}))
	must("IP_ADD_MEMBERSHIP", unix.SetsockoptIPMreq(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
		&unix.IPMreq{Multiaddr: group.Addr().As4(), Interface: lo.As4()}))
	must("IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1))
	must("IP_MULTICAST_IF", unix.SetsockoptInet4Addr(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, lo.As4()))
	f := os.NewFile(uintptr(fd), "member")
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return member{pc.(*net.UDPConn)}
}

// Send sends one datagram to the hub.
func (m member) Send(b []byte) error {
	_, err := m.WriteToUDPAddrPort(b, group)
	return err
}

// Recv returns the next datagram heard on the hub, or an error wrapping
// os.ErrDeadlineExceeded after timeout.
func (m member) Recv(timeout time.Duration) ([]byte, error) {
	b, _, err := m.recvFrom(timeout)
	return b, err
}

func (m member) recvFrom(timeout time.Duration) ([]byte, netip.AddrPort, error) {
	buf := make([]byte, 70000)
	m.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := m.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, from, err
	}
	return buf[:n], from, nil
}

func (m member) send(t *testing.T, b []byte) {
	t.Helper()
	if err := m.Send(b); err != nil {
		t.Fatalf("member send: %v", err)
	}
}

// recv returns the next datagram and its source, or nil after timeout.
func (m member) recv(t *testing.T, timeout time.Duration) ([]byte, netip.AddrPort) {
	t.Helper()
	b, from, err := m.recvFrom(timeout)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, from
	}
	if err != nil {
		t.Fatalf("member recv: %v", err)
	}
	return b, from
}

func frames(t testing.TB, n int) []*frame.Frame {
	t.Helper()
	pool := frame.NewPool(n, frame.DefaultSlotSize)
	fs := make([]*frame.Frame, n)
	if got := pool.Get(fs); got != n {
		t.Fatalf("pool gave %d frames", got)
	}
	return fs
}

func ethFrame(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, byte(i), 0x08, 0x00})
	return b
}

// readFrames reads until it has want frames or timeout passes.
func readFrames(t *testing.T, c *Conn, want int, timeout time.Duration) [][]byte {
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

func join(t *testing.T, g netip.AddrPort, local netip.Addr) *Conn {
	t.Helper()
	c, err := Join(g, local, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestHub: two QEMU-style members and the port exchange frames both ways;
// the port never reads back its own frames, while members hear theirs.
func TestHub(t *testing.T) {
	run := netnsRunner(t)
	var a, b member
	var c *Conn
	run(func() {
		a, b = newMember(t, false), newMember(t, false)
		c = join(t, group, netip.Addr{}) // default: 127.0.0.1
	})
	if c.Source().Addr() != lo || c.Source().Port() == group.Port() {
		t.Fatalf("sends from %v", c.Source())
	}

	// Member a to the hub: the port and member b get it; a hears itself.
	a.send(t, ethFrame(1, 60))
	if got := readFrames(t, c, 1, 5*time.Second); !bytes.Equal(got[0], ethFrame(1, 60)) {
		t.Fatal("port: wrong frame from a")
	}
	for name, m := range map[string]member{"a": a, "b": b} {
		if d, from := m.recv(t, 5*time.Second); !bytes.Equal(d, ethFrame(1, 60)) || from.Port() != group.Port() {
			t.Fatalf("member %s: got %d bytes from %v", name, len(d), from)
		}
	}

	// The port to the hub: both members get the frames, from the port's
	// source address.
	fs := frames(t, 3)
	for i, f := range fs {
		f.SetLen(copy(f.Space(), ethFrame(10+i, 100+i)))
	}
	if n, err := c.WriteFrames(fs); n != 3 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	// Once a send has reached the group, the engine's direct writes
	// (TryWriteFrames) go out the same way, without waiting.
	if n, cut := c.TryWriteFrames(fs); n != 3 || cut {
		t.Fatalf("TryWriteFrames: %d, cut %v", n, cut)
	}
	for name, m := range map[string]member{"a": a, "b": b} {
		for i := range 6 {
			i := i % 3
			d, from := m.recv(t, 5*time.Second)
			if !bytes.Equal(d, ethFrame(10+i, 100+i)) || from != c.Source() {
				t.Fatalf("member %s frame %d: %d bytes from %v", name, i, len(d), from)
			}
		}
	}

	// The port's frames came back to it too, and were dropped: the next
	// frame it reads is b's.
	b.send(t, ethFrame(2, 60))
	if got := readFrames(t, c, 1, 5*time.Second); !bytes.Equal(got[0], ethFrame(2, 60)) {
		t.Fatalf("port read back %d bytes, want b's frame", len(got[0]))
	}
	if e := c.Echoes(); e != 6 {
		t.Errorf("Echoes %d, want 6", e)
	}
	for r := range ports.NumDropReasons {
		if d := c.Dropped(r); d != 0 {
			t.Errorf("%d frames dropped as %v", d, r)
		}
	}
}

// TestNeedsMulticastIF documents why the port binds its send socket to
// localAddr and sets IP_MULTICAST_IF: in a namespace with only lo up there
// is no route for a group, and a socket with neither cannot send to it.
func TestNeedsMulticastIF(t *testing.T) {
	run := netnsRunner(t)
	run(func() {
		pc, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		_, err = pc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(group))
		if !errors.Is(err, unix.ENETUNREACH) {
			t.Errorf("send from 0.0.0.0 without IP_MULTICAST_IF: %v, want ENETUNREACH", err)
		}
		// A bound source address is enough by itself: Linux routes a
		// multicast datagram out of the interface that holds it.
		bound, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer bound.Close()
		if _, err := bound.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(group)); err != nil {
			t.Errorf("send from 127.0.0.1 without IP_MULTICAST_IF: %v", err)
		}
		// Nor can the port join with the interface left to routing.
		if c, err := Join(group, netip.IPv4Unspecified(), Options{}); !errors.Is(err, unix.ENODEV) {
			if c != nil {
				c.Close()
			}
			t.Errorf("Join on 0.0.0.0 without a route: %v, want ENODEV", err)
		}
	})
}

// TestReusePort checks what the package doc claims: with SO_REUSEPORT, the
// kernel still delivers every multicast datagram to every socket bound to
// the group (it load-balances only unicast), so members using it and the
// port (SO_REUSEADDR only) coexist and all hear everything.
func TestReusePort(t *testing.T) {
	run := netnsRunner(t)
	var a, b member
	var c *Conn
	run(func() {
		a, b = newMember(t, true), newMember(t, true)
		c = join(t, group, lo)
	})
	const n = 20
	for i := range n {
		a.send(t, ethFrame(i, 60))
	}
	got := readFrames(t, c, n, 5*time.Second)
	for i := range n {
		if !bytes.Equal(got[i], ethFrame(i, 60)) {
			t.Fatalf("port frame %d wrong", i)
		}
	}
	for name, m := range map[string]member{"a": a, "b": b} {
		for i := range n {
			if d, _ := m.recv(t, 5*time.Second); !bytes.Equal(d, ethFrame(i, 60)) {
				t.Fatalf("member %s: datagram %d missing or wrong", name, i)
			}
		}
	}
}

// TestLoopOffOnLo: on lo, IP_MULTICAST_LOOP=0 does not keep a datagram from
// local sockets, the sender's own included.
func TestLoopOffOnLo(t *testing.T) {
	run := netnsRunner(t)
	var a, b member
	run(func() { a, b = newMember(t, false), newMember(t, false) })
	rc, _ := a.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0) })
	a.send(t, []byte("loop off"))
	for name, m := range map[string]member{"a": a, "b": b} {
		if d, _ := m.recv(t, 2*time.Second); string(d) != "loop off" {
			t.Errorf("member %s did not hear a datagram sent on lo with loop off", name)
		}
	}
}

func TestOversizeAndEmpty(t *testing.T) {
	run := netnsRunner(t)
	var a member
	var c *Conn
	run(func() {
		a = newMember(t, false)
		var err error
		if c, err = Join(group, lo, Options{MaxFrame: 1600}); err != nil {
			t.Fatal(err)
		}
	})
	defer c.Close()
	a.send(t, ethFrame(1, frame.DefaultSlotSize+1))
	a.send(t, ethFrame(2, 1601))
	a.send(t, nil)
	a.send(t, ethFrame(3, 1600))
	if got := readFrames(t, c, 1, 5*time.Second); len(got) != 1 || !bytes.Equal(got[0], ethFrame(3, 1600)) {
		t.Fatal("wrong frames")
	}
	if o, r := c.IngressDrops[ports.DropOversize].Load(), c.IngressDrops[ports.DropRunt].Load(); o != 2 || r != 1 {
		t.Errorf("ingress drops: oversize %d runt %d, want 2 and 1", o, r)
	}
	fs := frames(t, 3)
	fs[0].SetLen(0)
	fs[1].SetLen(1601)
	fs[2].SetLen(copy(fs[2].Space(), ethFrame(4, 60)))
	if n, err := c.WriteFrames(fs); n != 1 || err != nil {
		t.Fatalf("WriteFrames: %d, %v", n, err)
	}
	if o, r := c.EgressDrops[ports.DropOversize].Load(), c.EgressDrops[ports.DropRunt].Load(); o != 1 || r != 1 {
		t.Errorf("egress drops: oversize %d runt %d, want 1 and 1", o, r)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	run := netnsRunner(t)
	var c *Conn
	run(func() { c = join(t, group, lo) })
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
		t.Fatal(err)
	}
	fs := frames(t, 1)
	fs[0].SetLen(60)
	if _, err := c.WriteFrames(fs); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteFrames after Close: %v", err)
	}
}

func TestJoinErrors(t *testing.T) {
	for _, tc := range []struct {
		g     string
		local netip.Addr
	}{
		{"127.0.0.1:1234", lo},
		{"230.0.0.1:0", lo},
		{"230.0.0.1:1234", netip.IPv6Loopback()},
		{"[ff05::1]:1234", netip.IPv6Loopback()},
	} {
		if c, err := Join(netip.MustParseAddrPort(tc.g), tc.local, Options{}); err == nil {
			c.Close()
			t.Errorf("Join(%s, %v) succeeded", tc.g, tc.local)
		}
	}
}

func TestString(t *testing.T) {
	run := netnsRunner(t)
	var c *Conn
	run(func() { c = join(t, group, lo) })
	if s := c.String(); s != "mcast 230.0.0.1:1234 via 127.0.0.1" {
		t.Errorf("String() = %q", s)
	}
}

// TestZeroAllocs: two ports on one hub, one writes, the other reads.
func TestZeroAllocs(t *testing.T) {
	run := netnsRunner(t)
	var a, b *Conn
	run(func() { a, b = join(t, group, lo), join(t, group, lo) })
	out, in := frames(t, 8), frames(t, 8)
	for i, f := range out {
		f.SetLen(copy(f.Space(), ethFrame(i, 100)))
	}
	allocs := testing.AllocsPerRun(100, func() {
		if n, err := a.WriteFrames(out); n != len(out) || err != nil {
			t.Fatalf("WriteFrames: %d, %v", n, err)
		}
		for got := 0; got < len(out); {
			n, err := b.ReadFrames(in[:len(out)-got])
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per batch, want 0", allocs)
	}
}
