// Package dgram implements ports that carry one Ethernet frame per datagram
// to one QEMU instance, over UDP or a unix datagram socket: QEMU's
// -netdev dgram backend and the legacy -netdev socket,udp= one.
//
// # Wiring
//
// Each side binds its own address and sends to the other's. zswitch's
// local address is QEMU's remote and the other way round:
//
//	zswitch: dgram.OpenUDP(127.0.0.1:5555, 127.0.0.1:5556, opt)
//	QEMU:    -netdev dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=5556,remote.type=inet,remote.host=127.0.0.1,remote.port=5555
//	         -netdev socket,id=n0,udp=127.0.0.1:5555,localaddr=127.0.0.1:5556
//
//	zswitch: dgram.OpenUnix("/tmp/zsw.sock", "/tmp/q1.sock", opt)
//	QEMU:    -netdev dgram,id=n0,local.type=unix,local.path=/tmp/q1.sock,remote.type=unix,remote.path=/tmp/zsw.sock
//
// Like QEMU, a port takes datagrams from any sender.
//
// # Peers that come and go
//
// A datagram port has no connection. When the QEMU's unix socket does not
// exist (yet), or the QEMU has exited, frames towards it are dropped and
// counted as link_down, and Stats.LinkUp goes false until a send succeeds
// again. Nothing needs reopening when the QEMU restarts.
//
// # Framing
//
// QEMU treats an empty datagram as a hang-up, so a port never sends one;
// received empty datagrams are dropped as runts. A datagram longer than the
// frame slot (or Options.MaxFrame) is dropped whole as oversize, never
// delivered cut short.
package dgram

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"golang.org/x/sys/unix"
)

// DefaultMaxFrame is QEMU's largest frame (NET_BUFSIZE, 4096 + 65536).
const DefaultMaxFrame = 4096 + 65536

// DefaultBatchSize is how many datagrams one system call moves by default.
const DefaultBatchSize = 64

// maxBatch is the kernel's limit on messages per recvmmsg/sendmmsg (UIO_MAXIOV).
const maxBatch = 1024

// sockBuf is the socket buffer size a port asks for: a burst from a fast
// guest should wait in the kernel, not be dropped.
const sockBuf = 4 << 20

// Largest UDP payloads: 65535 minus the IP (IPv4 only) and UDP headers.
const (
	maxUDP4 = 65535 - 20 - 8
	maxUDP6 = 65535 - 8
)

// Options tune a port. The zero value is ready to use.
type Options struct {
	// MaxFrame is the longest frame sent or received; longer ones are
	// dropped as oversize. Default DefaultMaxFrame. Received frames are also
	// limited by the frame slot, and UDP by its largest payload.
	MaxFrame int
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
	// BatchSize is the most datagrams moved per system call (and frames per
	// ReadFrames). Default DefaultBatchSize, at most 1024.
	BatchSize int
}

func (o Options) withDefaults() Options {
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, maxBatch)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// A Conn is a datagram port. ReadFrames and WriteFrames may run at the same
// time on two goroutines; Close may be called from any.
type Conn struct {
	ports.Stats

	name string
	pc   net.PacketConn // *net.UDPConn or *net.UnixConn: frames arrive here
	tx   io.Closer      // unix: the connected socket frames leave by
	dp   *mmsg.Datapath
	log  *slog.Logger

	path string      // unix: the socket file zswitch bound, removed by Close
	file os.FileInfo // unix: what path was when bound, so Close removes only its own

	closeOnce sync.Once
	closeErr  error
}

var _ ports.TryWriter = (*Conn)(nil)

// OpenUDP binds local, zswitch's address (QEMU's remote), and sends to
// remote, the QEMU's local address. Both must be of one family. It receives
// from any source, as QEMU does.
func OpenUDP(local, remote netip.AddrPort, opt Options) (*Conn, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	name := fmt.Sprintf("dgram udp:%v->%v", local, remote)
	switch {
	case !local.IsValid() || !remote.IsValid() || remote.Port() == 0:
		return nil, fmt.Errorf("%s: need a local address and a remote address with a port", name)
	case local.Addr().Is4() != remote.Addr().Is4():
		return nil, fmt.Errorf("%s: local and remote address families differ", name)
	case remote.Addr().IsMulticast():
		return nil, fmt.Errorf("%s: remote is a multicast group: use package mcast", name)
	}
	opt = opt.withDefaults()
	network, maxOut := "udp4", maxUDP4
	if local.Addr().Is6() {
		network, maxOut = "udp6", maxUDP6
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { mmsg.SetBuffers(int(fd), sockBuf) })
	}}
	pc, err := lc.ListenPacket(context.Background(), network, local.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if local.Port() == 0 {
		local = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		name = fmt.Sprintf("dgram udp:%v->%v", local, remote)
	}
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c, err := newConn(name, pc, nil, rc, mmsg.Sockaddr(remote), min(opt.MaxFrame, maxOut), nil, opt)
	if err != nil {
		return nil, err
	}
	c.LinkUp.Store(true) // connectionless: nothing says otherwise until a send fails
	opt.Logger.Info("port open", "port", name)
	return c, nil
}

// OpenUnix binds a unix datagram socket at localPath, zswitch's address
// (QEMU's remote.path), and sends to remotePath, the QEMU's local.path. A
// stale socket file at localPath is replaced, as QEMU does; any other kind
// of file there is an error. The remote socket need not exist yet. Close
// removes localPath. A path starting with '@' is an abstract socket.
//
// Frames leave by a second socket, connected to remotePath: only a
// connected unix datagram socket can wait for room in the peer's receive
// queue (net.unix.max_dgram_qlen datagrams, 10 by default) on the
// netpoller. An unconnected one is always "writable" and would spin.
func OpenUnix(localPath, remotePath string, opt Options) (*Conn, error) {
	name := fmt.Sprintf("dgram unix:%s->%s", localPath, remotePath)
	if _, err := mmsg.SockaddrUnix(remotePath); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := mmsg.SockaddrUnix(localPath); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	abstract := localPath[0] == '@'
	if !abstract {
		if err := removeStaleSocket(localPath); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	rx, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: localPath, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if rc, err := rx.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { mmsg.SetBuffers(int(fd), sockBuf) })
	}
	var fi os.FileInfo
	if !abstract {
		fi, _ = os.Lstat(localPath)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		rx.Close()
		if !abstract {
			os.Remove(localPath)
		}
		return nil, fmt.Errorf("%s: %w", name, os.NewSyscallError("socket", err))
	}
	mmsg.SetBuffers(fd, sockBuf)
	tx := os.NewFile(uintptr(fd), name) // non-blocking, so on the netpoller
	txRC, err := tx.SyscallConn()
	if err != nil {
		rx.Close()
		tx.Close()
		if !abstract {
			os.Remove(localPath)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cn := &connector{rc: txRC, sa: &unix.SockaddrUnix{Name: remotePath}}
	cn.fn = cn.control
	c, err := newConn(name, rx, tx, txRC, nil, opt.MaxFrame, cn.connect, opt)
	if err != nil {
		tx.Close()
		if !abstract {
			os.Remove(localPath)
		}
		return nil, err
	}
	if !abstract {
		c.path, c.file = localPath, fi
	}
	c.LinkUp.Store(cn.connect() == nil) // the peer's socket is bound now
	opt.Logger.Info("port open", "port", name, "peer_up", c.LinkUp.Load())
	return c, nil
}

// A connector connects a datagram socket to a fixed unix address without
// allocating.
type connector struct {
	rc  syscall.RawConn
	sa  *unix.SockaddrUnix
	err error
	fn  func(fd uintptr) // cn.control, bound once
}

func (cn *connector) control(fd uintptr) { cn.err = unix.Connect(int(fd), cn.sa) }

func (cn *connector) connect() error {
	if err := cn.rc.Control(cn.fn); err != nil {
		return err
	}
	return cn.err
}

// removeStaleSocket removes the socket file at path, left behind by an
// earlier run, and refuses to touch anything that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// newConn wraps rx, the socket frames arrive on, and the socket frames
// leave by: rx itself (tx nil) or tx, through txRC, towards to (nil when
// the socket is connected). On error it closes rx.
func newConn(name string, rx net.PacketConn, tx io.Closer, txRC syscall.RawConn, to []byte, maxOut int, connect func() error, opt Options) (*Conn, error) {
	rxRC, err := rx.(syscall.Conn).SyscallConn()
	if err != nil {
		rx.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &Conn{name: name, pc: rx, tx: tx, log: opt.Logger}
	c.dp = mmsg.NewDatapath(mmsg.Config{
		Name:      name,
		Log:       opt.Logger,
		Stats:     &c.Stats,
		Read:      rxRC,
		Write:     txRC,
		To:        to,
		BatchSize: opt.BatchSize,
		MaxIn:     opt.MaxFrame,
		MaxOut:    maxOut,
		Connect:   connect,
	})
	return c, nil
}

// ReadFrames waits for at least one datagram and fills up to len(fs)
// frames, one per datagram, with one recvmmsg. It may reorder fs: the
// frames filled are fs[:n]. After Close it returns an error wrapping
// net.ErrClosed.
func (c *Conn) ReadFrames(fs []*frame.Frame) (int, error) { return c.dp.ReadFrames(fs) }

// WriteFrames sends fs in order, one datagram per frame, with one sendmmsg
// per BatchSize frames. It drops and counts empty and oversize frames, and
// all frames while the peer is absent (link_down), without an error. It
// moves the frames it sent to the front of fs: they are fs[:n].
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

// LocalAddr is the address the port is bound to, where QEMU sends.
func (c *Conn) LocalAddr() net.Addr { return c.pc.LocalAddr() }

// String describes the port for logs, e.g.
// "dgram udp:127.0.0.1:5555->127.0.0.1:5556".
func (c *Conn) String() string { return c.name }

// Close closes the socket, which unblocks ReadFrames and WriteFrames, and
// removes the unix socket file if it is still the one the port bound. It is
// safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.dp.Close()
		if err := c.pc.Close(); err != nil {
			c.closeErr = fmt.Errorf("%s: %w", c.name, err)
		}
		if c.tx != nil {
			c.tx.Close()
		}
		if c.path != "" && c.file != nil {
			if fi, err := os.Lstat(c.path); err == nil && os.SameFile(fi, c.file) {
				os.Remove(c.path)
			}
		}
		c.log.Info("port closed", "port", c.name)
	})
	return c.closeErr
}
