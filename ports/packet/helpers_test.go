package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"golang.org/x/sys/unix"
)

// wait bounds every step that should take milliseconds.
const wait = 5 * time.Second

// requireRoot skips a test that needs to create network namespaces, veths
// and TAPs, unless ZSWITCH_REQUIRE_QEMU=1 asks for a failure instead.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	const why = "packet: the test needs root (CAP_NET_ADMIN, CAP_NET_RAW) for network namespaces, veths and TAPs"
	if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
		t.Fatalf("%s (ZSWITCH_REQUIRE_QEMU=1)", why)
	}
	t.Skipf("%s (set ZSWITCH_REQUIRE_QEMU=1 to fail instead)", why)
}

// A testNet is a private network namespace, destroyed when the test ends
// together with every link in it. It is never named, so nothing is left
// in /var/run/netns even if the test binary dies.
type testNet struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

func newNet(t testing.TB) *testNet {
	t.Helper()
	requireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // enters it
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("new network namespace: %v", err)
	}
	// No IPv6, so the host stack sends nothing (RS, MLD, DAD) on test
	// links and every frame a test sees is its own.
	for _, k := range []string{"all", "default"} {
		os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		t.Fatalf("back to the original namespace: %v", err) // the thread stays locked and dies
	}
	runtime.UnlockOSThread()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	n := &testNet{ns: ns, h: h}
	t.Cleanup(func() {
		h.Close()
		ns.Close()
	})
	return n
}

// do runs fn on a locked thread inside the namespace.
func (n *testNet) do(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	fn()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("back to the original namespace: %v", err)
	}
	runtime.UnlockOSThread()
}

// veth creates the veth pair a-b with the given MTU and sets both up.
func (n *testNet) veth(t testing.TB, a, b string, mtu int) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a, MTU: mtu}, PeerName: b, PeerMTU: uint32(mtu)}
	if err := n.h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s-%s: %v", a, b, err)
	}
	n.up(t, a)
	n.up(t, b)
}

// vlan creates the vlan device name on parent with VID vid and sets it up.
// It skips the test on a kernel without 802.1Q devices (CONFIG_VLAN_8021Q).
func (n *testNet) vlan(t testing.TB, parent, name string, vid int) {
	t.Helper()
	p := n.link(t, parent)
	v := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index}, VlanId: vid}
	if err := n.h.LinkAdd(v); errors.Is(err, unix.EOPNOTSUPP) {
		t.Skipf("add vlan %s: %v: this kernel has no 802.1Q devices (CONFIG_VLAN_8021Q)", name, err)
	} else if err != nil {
		t.Fatalf("add vlan %s: %v", name, err)
	}
	n.up(t, name)
}

func (n *testNet) link(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (n *testNet) up(t testing.TB, name string) {
	t.Helper()
	if err := n.h.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

func (n *testNet) down(t testing.TB, name string) {
	t.Helper()
	if err := n.h.LinkSetDown(n.link(t, name)); err != nil {
		t.Fatalf("set %s down: %v", name, err)
	}
}

func (n *testNet) del(t testing.TB, name string) {
	t.Helper()
	if err := n.h.LinkDel(n.link(t, name)); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
}

// open opens a port on ifname inside the namespace and closes it when the
// test ends.
func (n *testNet) open(t testing.TB, ifname string, opt Options) *Conn {
	t.Helper()
	var c *Conn
	var err error
	n.do(t, func() { c, err = Open(ifname, opt) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openUp is open, then waits until the port sees the link up: the carrier
// of a veth just set up may reach the flags a moment later.
func (n *testNet) openUp(t testing.TB, ifname string, opt Options) *Conn {
	t.Helper()
	c := n.open(t, ifname, opt)
	waitFor(t, "link up", func() bool { return c.LinkUp.Load() })
	return c
}

// waitFor polls cond until it holds, failing the test after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A rawPeer is a plain AF_PACKET socket on the far side of a port, the way
// a test sees the wire. It ignores its own transmissions and, like the
// port, puts VLAN tags the kernel took out back in.
type rawPeer struct {
	f  *os.File
	rc syscall.RawConn
	// stripped, if set, keeps frames as the kernel hands them over,
	// without the tag it took out.
	stripped bool
}

func (n *testNet) peer(t testing.TB, ifname string) *rawPeer {
	t.Helper()
	var fd int
	var err error
	n.do(t, func() { fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0) })
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []int{unix.PACKET_AUXDATA, unix.PACKET_IGNORE_OUTGOING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o, 1); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
	}
	mmsg.SetBuffers(fd, sockBuf) // a burst of 200 frames must fit
	idx := n.link(t, ifname).Attrs().Index
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "peer:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &rawPeer{f: f, rc: rc}
	t.Cleanup(func() { p.Close() })
	return p
}

// Send sends one frame.
func (p *rawPeer) Send(b []byte) error {
	_, err := p.f.Write(b)
	return err
}

// Recv returns the next frame, or an error wrapping os.ErrDeadlineExceeded
// after timeout.
func (p *rawPeer) Recv(timeout time.Duration) ([]byte, error) {
	buf := make([]byte, 70000)
	oob := make([]byte, 256)
	p.f.SetReadDeadline(time.Now().Add(timeout))
	var n, oobn int
	var rerr error
	err := p.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	b := buf[:n]
	if tag, ok := auxTag(oob[:oobn]); ok && !p.stripped {
		b = insertTag(b, tag)
	}
	return b, nil
}

func (p *rawPeer) Close() error { return p.f.Close() }

func (p *rawPeer) send(t testing.TB, b []byte) {
	t.Helper()
	if err := p.Send(b); err != nil {
		t.Fatalf("peer send: %v", err)
	}
}

// recv returns the next frame, failing the test after wait.
func (p *rawPeer) recv(t testing.TB) []byte {
	t.Helper()
	b, err := p.Recv(wait)
	if err != nil {
		t.Fatalf("peer receive: %v", err)
	}
	return b
}

// none fails if a frame arrives within d.
func (p *rawPeer) none(t testing.TB, d time.Duration) {
	t.Helper()
	if b, err := p.Recv(d); err == nil {
		t.Fatalf("peer received an unexpected %d-byte frame: % x", len(b), b[:min(len(b), 32)])
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

// insertTag returns b with the 4-byte tag after the MAC addresses.
func insertTag(b []byte, tag uint32) []byte {
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = binary.BigEndian.AppendUint32(out, tag)
	return append(out, b[12:]...)
}

// ethFrame returns frame i of size bytes: broadcast, a source MAC and a
// payload that carry i, and EtherType 0x88b5 (local experimental).
func ethFrame(i, size int) []byte {
	b := make([]byte, size)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0, 0x88, 0xb5})
	binary.BigEndian.PutUint32(b[8:], uint32(i))
	for j := 14; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

// tagged returns ethFrame(i, size) with a tag (TPID<<16 | TCI) inserted.
func tagged(i, size int, tag uint32) []byte { return insertTag(ethFrame(i, size), tag) }

// frames returns n frames from a fresh pool of default-size slots.
func frames(t testing.TB, n int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	if got := frame.NewPool(n, frame.DefaultSlotSize).Get(fs); got != n {
		t.Fatalf("pool gave %d of %d frames", got, n)
	}
	return fs
}

// write writes the frames bs with one WriteFrames call and returns n.
func write(t testing.TB, c *Conn, bs ...[]byte) int {
	t.Helper()
	fs := frames(t, len(bs))
	for i, f := range fs {
		f.SetLen(copy(f.Space(), bs[i]))
	}
	n, err := c.WriteFrames(fs)
	if err != nil {
		t.Fatalf("WriteFrames: %v", err)
	}
	return n
}

// A reader reads a port on its own goroutine for the whole test, as the
// engine does, and hands over copies of the frames.
type reader struct {
	ch   chan []byte
	errc chan error
}

func startReader(t testing.TB, c *Conn) *reader {
	t.Helper()
	r := &reader{ch: make(chan []byte, 4096), errc: make(chan error, 1)}
	fs := frames(t, 16)
	go func() {
		for {
			n, err := c.ReadFrames(fs)
			for _, f := range fs[:n] {
				select {
				case r.ch <- bytes.Clone(f.Bytes()):
				default: // nobody is looking: never block Close
				}
			}
			if err != nil {
				r.errc <- err
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		if err := <-r.errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrames ended with %v, want net.ErrClosed after Close", err)
		}
	})
	return r
}

// next returns the next frame the port read, failing after wait.
func (r *reader) next(t testing.TB) []byte {
	t.Helper()
	select {
	case b := <-r.ch:
		return b
	case err := <-r.errc:
		t.Fatalf("ReadFrames: %v", err)
	case <-time.After(wait):
		t.Fatalf("port received nothing in %v", wait)
	}
	return nil
}

// expect fails unless the next frame the port read is want.
func (r *reader) expect(t testing.TB, want []byte) {
	t.Helper()
	if got := r.next(t); !bytes.Equal(got, want) {
		t.Fatalf("port received %d bytes\n% x\nwant %d bytes\n% x", len(got), got[:min(len(got), 40)], len(want), want[:min(len(want), 40)])
	}
}

// none fails if the port reads a frame within d.
func (r *reader) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case b := <-r.ch:
		t.Fatalf("port received an unexpected %d-byte frame: % x", len(b), b[:min(len(b), 32)])
	case <-time.After(d):
	}
}

// expectPeer fails unless the next frame the peer received is want.
func expectPeer(t testing.TB, p *rawPeer, want []byte) {
	t.Helper()
	if got := p.recv(t); !bytes.Equal(got, want) {
		t.Fatalf("peer received %d bytes\n% x\nwant %d bytes\n% x", len(got), got[:min(len(got), 40)], len(want), want[:min(len(want), 40)])
	}
}
