package slip

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/ports"
)

// A Listener accepts connections, each from one QEMU serial port or
// another SLIP peer, and makes each a port of its own: a QEMU that
// restarts connects again and becomes a new port.
//
// QEMU connects once, at start (-serial unix:PATH). To let it reconnect
// to a restarted zswitch, give it a chardev that retries:
// -chardev socket,id=slip,path=PATH,reconnect-ms=1000 -serial chardev:slip.
type Listener struct {
	name string
	ln   net.Listener
	addr string
	opt  Options
	seq  atomic.Uint64 // connections accepted, to name them

	path string      // unix: the socket file bound, removed by Close
	file os.FileInfo // unix: what path was when bound, so Close removes only its own

	closeOnce sync.Once
	closeErr  error
}

var _ ports.Listener = (*Listener)(nil)

// Listen listens on addr, on network "unix" or "tcp" ("tcp4", "tcp6").
// A tcp port of 0 picks a free one: Addr says which.
//
// A unix socket file left at addr by a process that is gone is replaced,
// as QEMU does; one that a live process listens on is an error (address
// in use), and so is a file that is not a socket. Close removes the file.
// An addr starting with '@' is an abstract socket.
func Listen(network, addr string, opt Options) (*Listener, error) {
	name := fmt.Sprintf("slip %s:%s", network, addr)
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	l := &Listener{name: name, opt: opt}
	switch network {
	case "tcp", "tcp4", "tcp6":
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		l.ln, l.addr = ln, ln.Addr().String()
		l.name = fmt.Sprintf("slip %s:%s", network, l.addr)
	case "unix":
		if addr == "" {
			return nil, fmt.Errorf("%s: no path", name)
		}
		abstract := addr[0] == '@'
		if !abstract {
			if err := removeStaleSocket(addr); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		ln.SetUnlinkOnClose(false) // Close removes the file only if it is still ours
		l.ln, l.addr = ln, addr
		if !abstract {
			l.path = addr
			l.file, _ = os.Lstat(addr)
		}
	default:
		return nil, fmt.Errorf("%s: network must be unix or tcp", name)
	}
	opt.Logger.Info("listening", "port", l.name)
	return l, nil
}

// removeStaleSocket removes a socket file at path that nobody listens on,
// left behind by an earlier run. It refuses a live socket and anything
// that is not a socket.
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
	conn, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("%s: a running process listens there: %w", path, syscall.EADDRINUSE)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Stale: nobody listens.
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		// EPROTOTYPE (a datagram socket), EACCES: someone else's; leave it.
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Accept waits for the next connection and returns it as a *Port. After
// Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (ports.Port, error) {
	conn, err := l.ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("%s: accept: %w", l.name, err)
	}
	n := l.seq.Add(1)
	name := fmt.Sprintf("%s#%d", l.name, n)
	if ra := conn.RemoteAddr(); ra != nil && ra.String() != "" && ra.String() != "@" {
		name = fmt.Sprintf("%s#%d(%s)", l.name, n, ra)
	}
	opt := l.opt
	if opt.Mode == ModeIP && opt.MAC == nil {
		// Not from name: a tcp peer's address changes with every connection.
		opt.MAC = DeriveMAC(fmt.Sprintf("%s#%d", l.name, n))
	}
	l.opt.Logger.Info("connection accepted", "port", name)
	return accepted(name, conn, opt), nil
}

// Addr is where peers connect: the socket path, or the tcp address bound.
func (l *Listener) Addr() string { return l.addr }

// String describes the listener for logs, e.g. "slip unix:/tmp/slip.sock".
func (l *Listener) String() string { return l.name }

// Close stops accepting and removes the unix socket file if it is still the
// one Listen bound. Accepted ports stay open. It is safe to call twice.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		if err := l.ln.Close(); err != nil {
			l.closeErr = fmt.Errorf("%s: %w", l.name, err)
		}
		if l.path != "" && l.file != nil {
			if fi, err := os.Lstat(l.path); err == nil && os.SameFile(fi, l.file) {
				os.Remove(l.path)
			}
		}
		l.opt.Logger.Info("listener closed", "port", l.name)
	})
	return l.closeErr
}
