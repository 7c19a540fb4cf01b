//go:build linux

// Benchmarks of the engine between real host ports. Everything runs inside
// a network namespace of its own; nothing touches the root namespace.

package bench

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/packet"
	"github.com/zswitch/zswitch/ports/stream"
	"github.com/zswitch/zswitch/ports/tap"
	engine "github.com/zswitch/zswitch/switch"
	"golang.org/x/sys/unix"
)

// etherType is what every generated frame carries (local experimental):
// no protocol of the host takes it, so the host stack drops what it gets.
const etherType = 0x88b5

// genBatch is how many frames a generator hands over per system call.
const genBatch = 64

// stallTimeout: when nothing is delivered for this long while the window
// is full, the frames in flight are written off as lost (they count in
// drop%) so a loss cannot freeze the flow-control window.
const stallTimeout = 20 * time.Millisecond

var sizes = []int{64, 1514}

// Locally administered unicast MACs: the generator's source and the
// destination pinned to the egress port by a static FDB entry.
var (
	srcMAC = fdb.MAC{0x02, 0x7a, 0x62, 0, 0, 0x01}
	dstMAC = fdb.MAC{0x02, 0x7a, 0x62, 0, 0, 0x02}
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweepStaleNS()
	}
	os.Exit(m.Run())
}

// BenchmarkStreamToTAP: a client speaking QEMU stream framing (4-byte
// big-endian length, then the frame) over a unix socket → engine
// stream-listen port → engine → TAP port → the TAP's kernel side (up, no
// addresses, drops the frames). One op is one frame the TAP port wrote
// (its TxFrames counter).
func BenchmarkStreamToTAP(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchStreamToTAP(b, size) })
	}
}

// BenchmarkTAPToStream: frames injected into the TAP's kernel side with an
// AF_PACKET socket (sendmmsg) → TAP port → engine → stream port → a client
// reading the unix socket and counting frames. One op is one frame the
// client read.
func BenchmarkTAPToStream(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchTAPToStream(b, size) })
	}
}

// BenchmarkPacketToPacket: veth pairs a1<->a2 and b1<->b2; the engine has
// AF_PACKET ports on a2 and b2. An AF_PACKET socket writes frames into a1
// (sendmmsg), another counts them on b1 (recvmmsg). One op is one frame
// received on b1.
func BenchmarkPacketToPacket(b *testing.B) {
	for _, size := range sizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchPacketToPacket(b, size) })
	}
}

func benchStreamToTAP(b *testing.B, size int) {
	ns := newNS(b)
	fl := newFlow(b.N, engine.DefaultQueueLen/2)

	var dev *tap.Device
	ns.do(b, func() (err error) {
		dev, err = tap.Open("zswb0", tap.Options{}) // created and up, no addresses
		return err
	})
	var conn *net.UnixConn
	b.Cleanup(func() {
		if conn != nil {
			conn.Close()
		}
		dev.Close() // the engine closes it too; twice is fine
	})
	// Created after the ports' cleanups were registered, so it closes
	// first: ports closed under a running engine detach on their own.
	e := newEngine(b, "tap")
	// countingPort only tells the generator, without polling, that frames
	// left; delivery is checked against the engine's TxFrames below.
	tp, err := e.Attach("tap", "tap", countingPort{dev, fl})
	if err != nil {
		b.Fatal(err)
	}
	attachStreamClient(b, e, &conn)

	out := make([]byte, 0, genBatch*(4+size))
	for i := range genBatch {
		out = binary.BigEndian.AppendUint32(out, uint32(size))
		out = append(out, ethFrame(i, size)...)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer fl.halt()
	wg.Go(func() {
		t := time.NewTimer(stallTimeout)
		defer t.Stop()
		for fl.admit(genBatch, t) {
			fl.sent.Add(genBatch)
			if _, err := conn.Write(out); err != nil {
				fl.sent.Add(-genBatch) // not exact after a partial write; the run is over anyway
				return
			}
		}
	})
	run(b, e, "tap", fl, size)
	if tx := int64(tp.Stats().TxFrames.Load()); tx != fl.got.Load() {
		b.Errorf("TAP TxFrames = %d, frames counted = %d", tx, fl.got.Load())
	}
}

func benchTAPToStream(b *testing.B, size int) {
	ns := newNS(b)
	// The TAP's queue to its reader holds 500 frames (TUN_READQ_SIZE);
	// past that the kernel drops.
	fl := newFlow(b.N, 256)

	var dev *tap.Device
	var gen *rawSock
	var conn *net.UnixConn
	b.Cleanup(func() {
		if conn != nil {
			conn.Close()
		}
		if gen != nil {
			gen.f.Close()
		}
		if dev != nil {
			dev.Close() // the engine closes it too; twice is fine
		}
	})
	ns.do(b, func() (err error) {
		if dev, err = tap.Open("zswb0", tap.Options{}); err != nil {
			return err
		}
		gen, err = openSender("zswb0", size)
		return err
	})
	// Created after the ports' cleanups were registered, so it closes
	// first: ports closed under a running engine detach on their own.
	e := newEngine(b, "s/1")
	if _, err := e.Attach("tap", "tap", dev); err != nil {
		b.Fatal(err)
	}
	attachStreamClient(b, e, &conn)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.SetReadDeadline(time.Unix(1, 0)) // ends the reader; the connection stays until the engine is closed
	defer fl.halt()
	wg.Go(func() { readStream(conn, fl) })
	wg.Go(func() { gen.generate(fl) })
	run(b, e, "s/1", fl, size)
}

func benchPacketToPacket(b *testing.B, size int) {
	ns := newNS(b)
	// Both veth hops go through the CPU's backlog, 1000 frames
	// (net.core.netdev_max_backlog); past that the kernel drops.
	fl := newFlow(b.N, 256)

	var pa, pb *packet.Conn
	var gen, rcv *rawSock
	b.Cleanup(func() {
		for _, p := range []*packet.Conn{pa, pb} {
			if p != nil {
				p.Close()
			}
		}
		if gen != nil {
			gen.f.Close()
		}
		if rcv != nil {
			rcv.f.Close()
		}
	})
	ns.do(b, func() (err error) {
		for _, p := range [][2]string{{"a1", "a2"}, {"b1", "b2"}} {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: p[0]}, PeerName: p[1]}
			if err := netlink.LinkAdd(v); err != nil {
				return fmt.Errorf("add veth %s-%s: %w", p[0], p[1], err)
			}
		}
		for _, name := range []string{"a1", "a2", "b1", "b2"} {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("set %s up: %w", name, err)
			}
		}
		if pa, err = packet.Open("a2", packet.Options{}); err != nil {
			return err
		}
		if pb, err = packet.Open("b2", packet.Options{}); err != nil {
			return err
		}
		if gen, err = openSender("a1", size); err != nil {
			return err
		}
		rcv, err = openReceiver("b1")
		return err
	})
	// Created after the ports' cleanups were registered, so it closes
	// first: ports closed under a running engine detach on their own.
	e := newEngine(b, "pb")
	for name, p := range map[string]*packet.Conn{"pa": pa, "pb": pb} {
		if _, err := e.Attach(name, "packet", p); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, "packet ports up", func() bool { return pa.LinkUp.Load() && pb.LinkUp.Load() })

	var wg sync.WaitGroup
	defer wg.Wait()
	defer rcv.f.Close() // ends the receiver
	defer fl.halt()
	wg.Go(func() { rcv.receive(fl) })
	wg.Go(func() { gen.generate(fl) })
	run(b, e, "pb", fl, size)
}

// run times the delivery of b.N frames, the generator already waiting for
// the go, then waits for the frames still in flight and reports. Every frame counted at the far end must have left the engine's port
// egress: a frame that went around the engine would be an error.
func run(b *testing.B, e *engine.Engine, egress string, fl *flow, size int) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	close(fl.start)
	select {
	case <-fl.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d frames arrived (%d sent)", fl.got.Load(), b.N, fl.sent.Load())
	}
	el := time.Since(start)
	b.StopTimer()
	fl.halt()
	// Let what is in flight land (or not) before counting losses.
	for last, still := fl.got.Load(), 0; still < 5 && fl.got.Load() < fl.sent.Load(); {
		time.Sleep(10 * time.Millisecond)
		if g := fl.got.Load(); g == last {
			still++
		} else {
			last, still = g, 0
		}
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
	b.ReportMetric(float64(b.N)*float64(size)*8/el.Seconds()/1e9, "Gbit/s")
	var qfull uint64
	for _, p := range e.Ports() {
		qfull += p.Stats().Dropped(ports.DropQueueFull)
	}
	sent, got := fl.sent.Load(), fl.got.Load()
	if p, ok := e.Port(egress); !ok {
		b.Errorf("port %s gone", egress)
	} else if tx := int64(p.Stats().TxFrames.Load()); tx < got {
		b.Errorf("%d frames arrived but port %s wrote only %d", got, egress, tx)
	}
	if sent > 0 {
		b.ReportMetric(100*float64(max(sent-got, 0))/float64(sent), "drop%")
		b.ReportMetric(100*float64(qfull)/float64(sent), "qfull%")
	}
}

// A flow is the flow control between a generator and the far end: at most
// window frames in flight (sent − delivered − written off), as TCP would
// give, so the benchmark measures forwarding, not tail drops.
type flow struct {
	window int64
	target int64
	sent   atomic.Int64 // frames handed to the first hop
	got    atomic.Int64 // frames delivered at the far end
	lost   atomic.Int64 // frames written off after a stall
	start  chan struct{}
	kick   chan struct{} // cap 1: delivery progressed or halt
	done   chan struct{} // cap 1: target reached
	halted atomic.Bool
}

func newFlow(target, window int) *flow {
	return &flow{
		window: int64(window),
		target: int64(target),
		start:  make(chan struct{}),
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}, 1),
	}
}

// deliver counts n frames arrived at the far end.
func (f *flow) deliver(n int64) {
	if n <= 0 {
		return
	}
	if f.got.Add(n) >= f.target {
		select {
		case f.done <- struct{}{}:
		default:
		}
	}
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// halt stops the generator.
func (f *flow) halt() {
	f.halted.Store(true)
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// admit waits until k more frames fit in the window and reports false once
// the generator is to stop.
func (f *flow) admit(k int64, t *time.Timer) bool {
	select {
	case <-f.start:
	default:
		select {
		case <-f.start:
		case <-f.kick:
			return !f.halted.Load()
		}
	}
	for {
		if f.halted.Load() {
			return false
		}
		got := f.got.Load()
		if f.sent.Load()+k-got-f.lost.Load() <= f.window {
			return true
		}
		t.Reset(stallTimeout)
		select {
		case <-f.kick:
		case <-t.C:
			if f.got.Load() == got {
				f.lost.Store(f.sent.Load() - got)
			}
		}
	}
}

// countingPort passes frames to a port and counts what it wrote, which is
// what the engine adds to TxFrames after WriteFrames returns.
type countingPort struct {
	ports.Port
	fl *flow
}

func (p countingPort) WriteFrames(fs []*frame.Frame) (int, error) {
	n, err := p.Port.WriteFrames(fs)
	p.fl.deliver(int64(n))
	return n, err
}

// newEngine returns an engine that pins dstMAC to the port called to, and
// closes it when the benchmark ends (before its namespace goes).
func newEngine(b *testing.B, to string) *engine.Engine {
	b.Helper()
	e, err := engine.New(engine.Config{
		FDB:    fdb.Config{AgingTime: -1},
		Static: []engine.StaticEntry{{MAC: dstMAC, Port: to}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := e.Close(); err != nil {
			b.Errorf("engine close: %v", err)
		}
	})
	return e
}

// attachStreamClient attaches a stream listener on a unix socket as "s"
// and connects a client to it, *conn, which becomes port "s/1". The caller
// closes the client after the engine: a connection closed under a
// running engine detaches its port on its own.
func attachStreamClient(b *testing.B, e *engine.Engine, conn **net.UnixConn) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "zsw.sock")
	l, err := stream.Listen("unix", path, stream.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.AttachListener("s", "stream-listen", l); err != nil {
		b.Fatal(err)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	*conn = c
	waitFor(b, "stream port attached", func() bool { _, ok := e.Port("s/1"); return ok })
}

// readStream counts the frames of QEMU stream framing read from c.
func readStream(c *net.UnixConn, fl *flow) {
	buf := make([]byte, 256<<10)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		if err != nil {
			return
		}
		have += n
		off, frames := 0, int64(0)
		for have-off >= 4 {
			l := int(binary.BigEndian.Uint32(buf[off:]))
			if have-off < 4+l {
				break
			}
			off += 4 + l
			frames++
		}
		have = copy(buf, buf[off:have])
		fl.deliver(frames)
	}
}

// waitFor waits up to 5s for cond.
func waitFor(b *testing.B, what string, cond func() bool) {
	b.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// ethFrame returns frame i of size bytes, dstMAC from srcMAC.
func ethFrame(i, size int) []byte {
	fr := make([]byte, size)
	copy(fr[0:6], dstMAC[:])
	copy(fr[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(fr[12:], etherType)
	for j := 14; j < size; j++ {
		fr[j] = byte(i + j)
	}
	return fr
}

// A rawSock is an AF_PACKET socket that sends a fixed batch of frames with
// sendmmsg, or receives batches with recvmmsg and counts them, parking on
// the netpoller.
type rawSock struct {
	f     *os.File
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	addr  unix.RawSockaddrLinklayer
	vlen  int
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
	recv  bool
}

func newRawSock(fd int, name string, bufs [][]byte) (*rawSock, error) {
	f := os.NewFile(uintptr(fd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &rawSock{f: f, rc: rc, bufs: bufs, hdrs: make([]unix.Mmsghdr, len(bufs)), iovs: make([]unix.Iovec, len(bufs))}
	for i, b := range bufs {
		s.iovs[i].Base = &b[0]
		s.iovs[i].SetLen(len(b))
		s.hdrs[i].Hdr.Iov = &s.iovs[i]
		s.hdrs[i].Hdr.SetIovlen(1)
	}
	return s, nil
}

// openSender opens, in the calling thread's namespace, a socket that sends
// genBatch frames of size bytes out of ifname per sendmmsg.
func openSender(ifname string, size int) (*rawSock, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	// Protocol 0 and never bound: it receives nothing.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	bufs := make([][]byte, genBatch)
	for i := range bufs {
		bufs[i] = ethFrame(i, size)
	}
	s, err := newRawSock(fd, "packet-gen:"+ifname, bufs)
	if err != nil {
		return nil, err
	}
	s.addr = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: htons(etherType), Ifindex: int32(l.Attrs().Index), Halen: 6}
	copy(s.addr.Addr[:], dstMAC[:])
	for i := range s.hdrs {
		s.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.addr))
		s.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrLinklayer
	}
	s.fn = s.sendmmsg
	return s, nil
}

// openReceiver opens, in the calling thread's namespace, a socket that
// receives the benchmark's frames (EtherType 0x88b5 only) arriving on
// ifname, 64 per recvmmsg, each cut to its first 64 bytes.
func openReceiver(ifname string) (*rawSock, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: l.Attrs().Index}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	bufs := make([][]byte, genBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	s, err := newRawSock(fd, "packet-rcv:"+ifname, bufs)
	if err != nil {
		return nil, err
	}
	s.fn, s.recv = s.recvmmsg, true
	return s, nil
}

// generate sends batches while the flow admits them. A full device queue
// (ENOBUFS) is retried, not counted as sent.
func (s *rawSock) generate(fl *flow) {
	t := time.NewTimer(stallTimeout)
	defer t.Stop()
	for fl.admit(genBatch, t) {
		fl.sent.Add(genBatch)
		n, err := s.call(genBatch)
		fl.sent.Add(int64(n - genBatch))
		if errors.Is(err, unix.ENOBUFS) {
			runtime.Gosched()
			continue
		}
		if err != nil {
			return
		}
	}
}

// receive counts frames until the socket is closed.
func (s *rawSock) receive(fl *flow) {
	for {
		n, err := s.call(len(s.hdrs))
		if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.ENOMEM) {
			return
		}
		fl.deliver(int64(n))
	}
}

// call runs the socket's sendmmsg or recvmmsg on its first k messages.
func (s *rawSock) call(k int) (int, error) {
	s.vlen = k
	wait := s.rc.Write // EAGAIN: park until writable (sender) …
	if s.recv {
		wait = s.rc.Read // … or readable (receiver)
	}
	if err := wait(s.fn); err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return s.n, s.errno
	}
	return s.n, nil
}

func (s *rawSock) sendmmsg(fd uintptr) bool {
	return s.mmsg(fd, unix.SYS_SENDMMSG, unix.MSG_DONTWAIT)
}

func (s *rawSock) recvmmsg(fd uintptr) bool {
	return s.mmsg(fd, unix.SYS_RECVMMSG, unix.MSG_DONTWAIT|unix.MSG_WAITFORONE)
}

func (s *rawSock) mmsg(fd, trap uintptr, flags int) bool {
	for {
		n, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.vlen), uintptr(flags), 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // park on the netpoller
		case 0:
			s.n, s.errno = int(n), 0
		default:
			s.n, s.errno = 0, e
		}
		return true
	}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// requireRoot skips unless the benchmark can make network namespaces and
// TAPs; with ZSWITCH_REQUIRE_QEMU=1 it fails instead.
func requireRoot(b *testing.B) {
	b.Helper()
	var why string
	if os.Geteuid() != 0 {
		why = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for a network namespace, TAPs and veths"
	} else if fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		why = fmt.Sprintf("cannot open /dev/net/tun: %v", err)
	} else {
		unix.Close(fd)
	}
	if why == "" {
		return
	}
	if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
		b.Fatalf("bench: %s (ZSWITCH_REQUIRE_QEMU=1)", why)
	}
	b.Skipf("bench: %s (set ZSWITCH_REQUIRE_QEMU=1 to fail instead)", why)
}

// nsPrefix starts every namespace the benchmarks create; the process ID
// follows, so sweepStaleNS can tell orphans from live ones.
const nsPrefix = "zsw-bench-"

// sweepStaleNS deletes namespaces left by benchmark binaries that died
// without cleaning up, and with them their interfaces.
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

// A benchNS is a named network namespace deleted when the benchmark ends.
type benchNS struct {
	name string
	h    netns.NsHandle
}

// newNS creates a namespace with IPv6 off, so the kernel sends nothing of
// its own out of the interfaces. Cleanups registered after it (engine,
// sockets) run before it is deleted.
func newNS(b *testing.B) *benchNS {
	b.Helper()
	requireRoot(b)
	var r [4]byte
	rand.Read(r[:])
	ns := &benchNS{name: fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(r[:]))}
	err := onLockedThread(func() error {
		h, err := netns.NewNamed(ns.name) // moves this (discarded) thread into it
		ns.h = h
		return err
	})
	if err != nil {
		netns.DeleteNamed(ns.name)
		b.Fatalf("create netns %s: %v", ns.name, err)
	}
	b.Cleanup(func() {
		ns.h.Close()
		if err := netns.DeleteNamed(ns.name); err != nil {
			b.Errorf("delete netns %s: %v", ns.name, err)
		}
	})
	ns.do(b, func() error {
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

// onLockedThread runs fn on a fresh goroutine locked to its thread and
// never unlocked: the runtime destroys the thread with the goroutine, so
// no other goroutine ever runs in the namespace fn leaves it in.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

// do runs fn inside the namespace. Descriptors it opens keep working
// from any thread.
func (ns *benchNS) do(b *testing.B, fn func() error) {
	b.Helper()
	err := onLockedThread(func() error {
		if err := netns.Set(ns.h); err != nil {
			return fmt.Errorf("enter netns %s: %w", ns.name, err)
		}
		return fn()
	})
	if err != nil {
		b.Fatal(err)
	}
}
