// Package mcast implements a port that joins a QEMU multicast hub: the
// segment that QEMU instances started with -netdev socket,mcast= (or
// -netdev dgram with a multicast remote) share. The whole hub is one switch
// port; its members hear each other directly.
//
// # Wiring
//
//	zswitch: mcast.Join(230.0.0.1:1234, 127.0.0.1, opt)
//	QEMU:    -netdev socket,id=n0,mcast=230.0.0.1:1234,localaddr=127.0.0.1
//	         -netdev dgram,id=n0,remote.type=inet,remote.host=230.0.0.1,remote.port=1234,local.type=inet,local.host=127.0.0.1
//
// # How it meets QEMU's sockets
//
// Every QEMU binds group:port with SO_REUSEADDR, joins the group on
// localaddr and sends to group:port with IP_MULTICAST_LOOP on, from
// group:port: members cannot tell each other apart by address, and each
// hears its own frames. The port joins the same way with a receive socket,
// but sends from a second socket bound to localaddr:0, so the datagrams it
// hears back from itself carry that socket's address and are discarded
// (counted by Echoes, not as drops).
//
// The send socket is bound to localaddr and sets IP_MULTICAST_IF to it: on
// a host (or network namespace) without a route for the group, an unbound
// socket without IP_MULTICAST_IF fails with ENETUNREACH. (Either of the two
// is enough on Linux: a bound source address picks its interface.) The TTL
// is 1, so frames stay on the link. Multicast
// delivers every datagram to every socket bound to the group and port, with
// or without SO_REUSEPORT (which load-balances only unicast), so the port
// sets just SO_REUSEADDR, like QEMU.
//
// On the loopback interface IP_MULTICAST_LOOP changes nothing: a datagram
// sent on lo is received on lo, so members hear themselves either way.
//
// QEMU's multicast backends are IPv4 only, and so is this port. (IPv6
// multicast over lo would also need a multicast route on lo, which a
// fresh host or namespace lacks: sends fail with ENETUNREACH.)
package mcast

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"golang.org/x/sys/unix"
)

// DefaultMaxFrame is QEMU's largest frame (NET_BUFSIZE, 4096 + 65536).
const DefaultMaxFrame = 4096 + 65536

// DefaultBatchSize is how many datagrams one system call moves by default.
const DefaultBatchSize = 64

const (
	maxBatch = 1024           // UIO_MAXIOV: the kernel's limit per recvmmsg/sendmmsg
	sockBuf  = 4 << 20        // socket buffers: room for bursts
	maxUDP   = 65535 - 20 - 8 // the largest IPv4 UDP payload
)

// Options tune a port. The zero value is ready to use.
type Options struct {
	// MaxFrame is the longest frame sent or received; longer ones are
	// dropped as oversize. Default DefaultMaxFrame, but no more than a UDP
	// datagram carries. Received frames are also limited by the frame slot.
	MaxFrame int
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
	// BatchSize is the most datagrams moved per system call (and frames per
	// ReadFrames). Default DefaultBatchSize, at most 1024.
	BatchSize int
}

// A Conn is a port on a multicast hub. ReadFrames and WriteFrames may run
// at the same time on two goroutines; Close may be called from any.
type Conn struct {
	ports.Stats

	name   string
	group  netip.AddrPort
	source netip.AddrPort // where the port's own datagrams come from
	rx, tx *os.File
	dp     *mmsg.Datapath
	log    *slog.Logger

	closeOnce sync.Once
	closeErr  error
}

var _ ports.TryWriter = (*Conn)(nil)

// Join joins the hub at group (an IPv4 multicast address and port) on the
// interface that holds localAddr, and sends from localAddr. A zero
// localAddr means 127.0.0.1, which keeps the hub on this host. An unspecified localAddr (0.0.0.0) leaves the choice of
// interface to the routing table, as QEMU does without localaddr=.
func Join(group netip.AddrPort, localAddr netip.Addr, opt Options) (*Conn, error) {
	group = netip.AddrPortFrom(group.Addr().Unmap(), group.Port())
	localAddr = localAddr.Unmap()
	if !localAddr.IsValid() {
		localAddr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	name := fmt.Sprintf("mcast %v via %v", group, localAddr)
	switch {
	case !group.Addr().Is4() || !group.Addr().IsMulticast() || group.Port() == 0:
		return nil, fmt.Errorf("%s: need an IPv4 multicast group address and a port", name)
	case !localAddr.Is4():
		return nil, fmt.Errorf("%s: need an IPv4 local address", name)
	}
	if opt.MaxFrame <= 0 {
		opt.MaxFrame = DefaultMaxFrame
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = DefaultBatchSize
	}
	opt.BatchSize = min(opt.BatchSize, maxBatch)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := openSockets(group, localAddr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Conn{name: name, group: group, source: s.source, rx: s.rx, tx: s.tx, log: opt.Logger}
	rxRC, err1 := s.rx.SyscallConn()
	txRC, err2 := s.tx.SyscallConn()
	if err1 != nil || err2 != nil {
		s.rx.Close()
		s.tx.Close()
		return nil, fmt.Errorf("%s: %v %v", name, err1, err2)
	}
	c.dp = mmsg.NewDatapath(mmsg.Config{
		Name:        name,
		Log:         opt.Logger,
		Stats:       &c.Stats,
		Read:        rxRC,
		Write:       txRC,
		To:          mmsg.Sockaddr(group),
		BatchSize:   opt.BatchSize,
		MaxIn:       opt.MaxFrame,
		MaxOut:      min(opt.MaxFrame, maxUDP),
		Echo:        mmsg.Sockaddr(s.source),
		EchoAnyAddr: localAddr.IsUnspecified(),
	})
	c.LinkUp.Store(true)
	opt.Logger.Info("port open", "port", name, "source", s.source)
	return c, nil
}

type sockets struct {
	rx, tx *os.File
	source netip.AddrPort
}

// openSockets makes the receive socket (bound to the group, joined) and the
// send socket (bound to localAddr:0, multicast interface set, loop on).
func openSockets(group netip.AddrPort, localAddr netip.Addr) (s sockets, err error) {
	rxfd, txfd := -1, -1
	defer func() {
		if err != nil {
			for _, fd := range []int{rxfd, txfd} {
				if fd >= 0 {
					unix.Close(fd)
				}
			}
		}
	}()
	// step records the first error; later steps are skipped.
	step := func(what string, f func() error) {
		if err == nil {
			if e := f(); e != nil {
				err = os.NewSyscallError(what, e)
			}
		}
	}
	const typ = unix.SOCK_DGRAM | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	ip := unix.IPPROTO_IP

	// Receive: bound to the group itself, not the wildcard address (which
	// is what net.ListenMulticastUDP does), so other groups on the same
	// port stay out, like QEMU.
	step("socket", func() (e error) { rxfd, e = unix.Socket(unix.AF_INET, typ, 0); return e })
	step("setsockopt SO_REUSEADDR", func() error {
		mmsg.SetBuffers(rxfd, sockBuf)
		return unix.SetsockoptInt(rxfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	step("bind", func() error {
		return unix.Bind(rxfd, &unix.SockaddrInet4{Port: int(group.Port()), Addr: group.Addr().As4()})
	})
	step("setsockopt IP_ADD_MEMBERSHIP", func() error {
		mreq := &unix.IPMreq{Multiaddr: group.Addr().As4(), Interface: localAddr.As4()}
		return unix.SetsockoptIPMreq(rxfd, ip, unix.IP_ADD_MEMBERSHIP, mreq)
	})

	// Send: its own address tells the port's echoes apart.
	step("socket", func() (e error) { txfd, e = unix.Socket(unix.AF_INET, typ, 0); return e })
	step("bind", func() error {
		mmsg.SetBuffers(txfd, sockBuf)
		return unix.Bind(txfd, &unix.SockaddrInet4{Addr: localAddr.As4()})
	})
	if !localAddr.IsUnspecified() {
		step("setsockopt IP_MULTICAST_IF", func() error {
			return unix.SetsockoptInet4Addr(txfd, ip, unix.IP_MULTICAST_IF, localAddr.As4())
		})
	}
	step("setsockopt IP_MULTICAST_LOOP", func() error { return unix.SetsockoptInt(txfd, ip, unix.IP_MULTICAST_LOOP, 1) })
	step("setsockopt IP_MULTICAST_TTL", func() error { return unix.SetsockoptInt(txfd, ip, unix.IP_MULTICAST_TTL, 1) })
	step("getsockname", func() error {
		sa, e := unix.Getsockname(txfd)
		if in4, ok := sa.(*unix.SockaddrInet4); ok {
			s.source = netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
		}
		return e
	})
	if err != nil {
		return s, err
	}
	// Non-blocking descriptors: os.NewFile puts them on the netpoller.
	s.rx = os.NewFile(uintptr(rxfd), fmt.Sprintf("mcast rx %v", group))
	s.tx = os.NewFile(uintptr(txfd), fmt.Sprintf("mcast tx %v", s.source))
	return s, nil
}

// ReadFrames waits for at least one datagram from the hub and fills up to
// len(fs) frames, one per datagram, with one recvmmsg. The port's own
// datagrams, looped back, are skipped. It may reorder fs: the frames filled
// are fs[:n]. After Close it returns an error wrapping net.ErrClosed.
func (c *Conn) ReadFrames(fs []*frame.Frame) (int, error) { return c.dp.ReadFrames(fs) }

// WriteFrames sends fs to the group in order, one datagram per frame, with
// one sendmmsg per BatchSize frames. It drops and counts empty and oversize
// frames. It moves the frames it sent to the front of fs: they are fs[:n].
func (c *Conn) WriteFrames(fs []*frame.Frame) (int, error) { return c.dp.WriteFrames(fs) }

// TryWriteFrames sends the longest prefix of fs the socket takes now,
// without waiting, dropping or counting, for the engine's direct writes
// (ports.TryWriter). It leaves the rest, and every frame until a
// WriteFrames has reached the peer, to WriteFrames.
func (c *Conn) TryWriteFrames(fs []*frame.Frame) (n int, cut bool) { return c.dp.TryWriteFrames(fs) }

// Flush returns nil: a datagram is never cut.
func (c *Conn) Flush() error { return c.dp.Flush() }

// BatchSize is the most frames one ReadFrames call fills.
func (c *Conn) BatchSize() int { return c.dp.BatchSize() }

// Echoes is how many of the port's own datagrams the hub sent back to it.
// They are discarded, and are not frames, so not drops either.
func (c *Conn) Echoes() uint64 { return c.dp.Echoes() }

// Group is the hub's multicast address and port.
func (c *Conn) Group() netip.AddrPort { return c.group }

// Source is the address the port sends from.
func (c *Conn) Source() netip.AddrPort { return c.source }

// String describes the port for logs, e.g. "mcast 230.0.0.1:1234 via 127.0.0.1".
func (c *Conn) String() string { return c.name }

// Close leaves the group and closes both sockets, which unblocks
// ReadFrames and WriteFrames. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.dp.Close()
		if err := c.rx.Close(); err != nil {
			c.closeErr = fmt.Errorf("%s: %w", c.name, err)
		}
		c.tx.Close()
		c.log.Info("port closed", "port", c.name)
	})
	return c.closeErr
}
