package tap

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/frame"
	"golang.org/x/sys/unix"
)

// requireTAP skips the test unless it can make network namespaces and
// TAPs: root and /dev/net/tun. With ZSWITCH_REQUIRE_QEMU=1 (the CI's "no
// skipping" switch, as in internal/qemutest) it fails instead.
func requireTAP(t testing.TB) {
	t.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for network namespaces and TAPs"
	} else if fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		why = fmt.Sprintf("cannot open %s: %v", tunDevice, err)
	} else {
		unix.Close(fd)
	}
	if why == "" {
		return
	}
	if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
		t.Fatalf("tap: %s (ZSWITCH_REQUIRE_QEMU=1)", why)
	}
	t.Skipf("tap: %s (set ZSWITCH_REQUIRE_QEMU=1 to fail instead)", why)
}

// nsPrefix starts the name of every namespace the tests create; the test
// binary's process ID follows, so sweepStaleNS can tell which are orphans.
const nsPrefix = "zsw-tap-"

// sweepStaleNS deletes the namespaces of test binaries that died without
// cleaning up (killed on timeout, say), and with them their interfaces.
// Those of running binaries are left alone.
func sweepStaleNS() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		netns.DeleteNamed(e.Name())
	}
}

// A testNS is a named network namespace of one test, deleted when the test
// ends. Nothing a test does touches the root namespace.
type testNS struct {
	name string
	h    netns.NsHandle
}

// newNS creates a network namespace for t, with IPv6 off so the kernel
// sends no router or multicast listener chatter out of the test's
// interfaces. Cleanups registered after newNS (closing ports) run before
// the namespace is deleted.
func newNS(t testing.TB) *testNS {
	t.Helper()
	requireTAP(t)
	var b [4]byte
	rand.Read(b[:])
	ns := &testNS{name: fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(b[:]))}
	err := onLockedThread(func() error {
		h, err := netns.NewNamed(ns.name) // also moves this thread into it
		ns.h = h
		return err
	})
	if err != nil {
		netns.DeleteNamed(ns.name) // in case the mount was made
		t.Fatalf("create netns %s: %v", ns.name, err)
	}
	t.Cleanup(func() {
		ns.h.Close()
		if err := netns.DeleteNamed(ns.name); err != nil {
			t.Errorf("delete netns %s: %v", ns.name, err)
		}
	})
	ns.do(t, func() error {
		for _, k := range []string{"all", "default"} {
			err := os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	})
	return ns
}

// onLockedThread runs fn on a fresh goroutine locked to its OS thread,
// which it never unlocks: whatever namespace fn leaves the thread in, the
// runtime destroys the thread when the goroutine ends, so no other
// goroutine ever runs in it.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// do runs fn inside the namespace and fails t if it returns an error.
// File descriptors fn opens (TAPs, sockets) keep working outside.
func (ns *testNS) do(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.try(fn); err != nil {
		t.Fatal(err)
	}
}

// try runs fn inside the namespace.
func (ns *testNS) try(fn func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(ns.h); err != nil {
			return fmt.Errorf("enter netns %s: %w", ns.name, err)
		}
		return fn()
	})
}

// open opens a TAP port inside the namespace and closes it at the end of
// the test.
func (ns *testNS) open(t testing.TB, name string, opt Options) *Device {
	t.Helper()
	var d *Device
	ns.do(t, func() error {
		var err error
		d, err = Open(name, opt)
		return err
	})
	t.Cleanup(func() { d.Close() })
	return d
}

// link looks up an interface inside the namespace.
func (ns *testNS) link(name string) (netlink.Link, error) {
	var l netlink.Link
	err := ns.try(func() error {
		var err error
		l, err = netlink.LinkByName(name)
		return err
	})
	return l, err
}

// exists reports whether the namespace has an interface called name.
func (ns *testNS) exists(t testing.TB, name string) bool {
	t.Helper()
	_, err := ns.link(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		return true
	case errors.As(err, &nf):
		return false
	}
	t.Fatalf("look up %s: %v", name, err)
	return false
}

// A packetPeer is the host's side of a TAP: an AF_PACKET socket bound to
// the interface. What it sends leaves the host through the interface and
// reaches the TAP's file descriptor; what the port writes is received on
// the interface and shows up here. It implements porttest.Peer.
type packetPeer struct {
	f   *os.File
	buf []byte
}

// newPacketPeer opens a packet socket on the interface ifname inside ns.
func newPacketPeer(t testing.TB, ns *testNS, ifname string) *packetPeer {
	t.Helper()
	var p *packetPeer
	ns.do(t, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		// Only what the port wrote, not what this socket sent itself; and
		// room for a burst while the reader starts.
		unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		p = &packetPeer{f: os.NewFile(uintptr(fd), "packet:"+ifname), buf: make([]byte, 1<<16)}
		return nil
	})
	t.Cleanup(func() { p.Close() })
	return p
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (p *packetPeer) Send(b []byte) error {
	_, err := p.f.Write(b)
	return err
}

func (p *packetPeer) Recv(timeout time.Duration) ([]byte, error) {
	p.f.SetReadDeadline(time.Now().Add(timeout))
	n, err := p.f.Read(p.buf)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(p.buf[:n]), nil
}

func (p *packetPeer) Close() error { return p.f.Close() }

// frames returns n frames from a fresh pool of slotSize slots.
func frames(t testing.TB, n, slotSize int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	if got := frame.NewPool(n, slotSize).Get(fs); got != n {
		t.Fatalf("pool gave %d of %d frames", got, n)
	}
	return fs
}

// ethFrame returns frame i of size bytes: unicast to a MAC nobody has,
// from a locally administered one, EtherType 0x88b5 (local experimental),
// with i in the source MAC and the payload.
func ethFrame(i, size int) []byte {
	b := make([]byte, size)
	copy(b, []byte{0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0, 0x88, 0xb5})
	binary.BigEndian.PutUint32(b[8:], uint32(i))
	for j := ethHeader; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

func setFrame(f *frame.Frame, b []byte) { f.SetLen(copy(f.Space(), b)) }

// readWithin reads one batch from d, closing d if nothing comes within
// timeout.
func readWithin(t testing.TB, d *Device, fs []*frame.Frame, timeout time.Duration) int {
	t.Helper()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := d.ReadFrames(fs)
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadFrames: %v", r.err)
		}
		return r.n
	case <-time.After(timeout):
		d.Close()
		<-done
		t.Fatalf("ReadFrames: nothing within %v", timeout)
		return 0
	}
}

// testLogger logs text to w at debug level.
func testLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
