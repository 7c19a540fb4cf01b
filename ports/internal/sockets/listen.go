package sockets

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// staleProbeTimeout bounds the connect that tells a stale unix socket file
// from a live one.
const staleProbeTimeout = time.Second

// A Listener listens on a unix or tcp stream socket and numbers the
// connections it accepts. It is named "KIND NETWORK:ADDR" (String), and
// every error it returns starts with that name.
type Listener struct {
	name string
	ln   net.Listener
	addr string
	log  *slog.Logger
	seq  atomic.Uint64 // connections accepted, to number them

	path string      // unix: the socket file bound, removed by Close
	file os.FileInfo // unix: what path was when bound, so Close removes only its own

	closeOnce sync.Once
	closeErr  error
}

// Listen listens on addr, on network "unix" or "tcp" ("tcp4", "tcp6"),
// and logs "listening" to log (nil: discard). kind starts the listener's
// name, e.g. "stream". A tcp port of 0 picks a free one: Addr says which.
//
// A unix socket file left at addr by a process that is gone is replaced,
// as QEMU does; one that a live process listens on is an error wrapping
// syscall.EADDRINUSE, and so is (not wrapping it) a file that is not a
// socket or a socket that cannot be probed. Such files are left alone.
// An addr starting with '@' is an abstract socket: no file.
func Listen(kind, network, addr string, log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := fmt.Sprintf("%s %s:%s", kind, network, addr)
	l := &Listener{name: name, log: log}
	switch network {
	case "tcp", "tcp4", "tcp6":
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		l.ln, l.addr = ln, ln.Addr().String()
		l.name = fmt.Sprintf("%s %s:%s", kind, network, l.addr)
	case "unix":
		if addr == "" {
			return nil, fmt.Errorf("%s: %w", name, ErrNoPath)
		}
		abstract := addr[0] == '@'
		if !abstract {
			if err := RemoveStaleSocket(addr); err != nil {
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
		return nil, fmt.Errorf("%s: %w", name, ErrNetwork)
	}
	log.Info("listening", "port", l.name)
	return l, nil
}

// RemoveStaleSocket removes a socket file at path that nobody listens on,
// left behind by an earlier run. It refuses a live socket (an error
// wrapping syscall.EADDRINUSE) and anything that is not a socket, and
// leaves them alone. A path that does not exist is fine.
func RemoveStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	conn, err := net.DialTimeout("unix", path, staleProbeTimeout)
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

// Accept waits for the next connection and returns it with its number:
// 1 for the first accepted, then 2, and so on. After Close the error wraps
// net.ErrClosed.
func (l *Listener) Accept() (conn net.Conn, n uint64, err error) {
	conn, err = l.ln.Accept()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: accept: %w", l.name, err)
	}
	return conn, l.seq.Add(1), nil
}

// ConnName names the connection numbered n: "NAME#n", or "NAME#n(PEER)"
// when peer is an address worth showing (a tcp peer; an unnamed unix one
// is not). A nil peer leaves the address out.
func (l *Listener) ConnName(n uint64, peer net.Addr) string {
	if peer != nil {
		if s := peer.String(); s != "" && s != "@" {
			return fmt.Sprintf("%s#%d(%s)", l.name, n, s)
		}
	}
	return fmt.Sprintf("%s#%d", l.name, n)
}

// Addr is where peers connect: the socket path (or '@' name), or the tcp
// address bound.
func (l *Listener) Addr() string { return l.addr }

// String is the listener's name, e.g. "stream unix:/tmp/zsw.sock".
func (l *Listener) String() string { return l.name }

// Close stops accepting, removes the unix socket file if it is still the
// one Listen bound, and logs "listener closed". Accepted connections stay
// open. It is safe to call more than once: later calls return what the
// first did.
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
		l.log.Info("listener closed", "port", l.name)
	})
	return l.closeErr
}
