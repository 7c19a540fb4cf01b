package stream

import (
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// A Listener accepts stream connections, each from one QEMU, and makes
// each a port of its own.
type Listener struct {
	ln  *sockets.Listener
	opt Options
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
	opt = opt.withDefaults()
	ln, err := sockets.Listen("stream", network, addr, opt.Logger)
	if err != nil {
		return nil, err
	}
	return &Listener{ln: ln, opt: opt}, nil
}

// Accept waits for the next connection and returns it as a *Conn. After
// Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (ports.Port, error) {
	conn, n, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	name := l.ln.ConnName(n, conn.RemoteAddr())
	l.opt.Logger.Info("connection accepted", "port", name)
	return accepted(name, conn, l.opt), nil
}

// Addr is where peers connect: the socket path, or the tcp address bound.
func (l *Listener) Addr() string { return l.ln.Addr() }

// String describes the listener for logs, e.g. "stream unix:/tmp/zsw.sock".
func (l *Listener) String() string { return l.ln.String() }

// Close stops accepting and removes the unix socket file if it is still the
// one Listen bound. Accepted ports stay open. It is safe to call twice.
func (l *Listener) Close() error { return l.ln.Close() }
