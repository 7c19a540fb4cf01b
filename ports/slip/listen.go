package slip

import (
	"fmt"

	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// A Listener accepts connections, each from one QEMU serial port or
// another SLIP peer, and makes each a port of its own: a QEMU that
// restarts connects again and becomes a new port.
//
// QEMU connects once, at start (-serial unix:PATH). To let it reconnect
// to a restarted zswitch, give it a chardev that retries:
// -chardev socket,id=slip,path=PATH,reconnect-ms=1000 -serial chardev:slip.
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
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("slip %s:%s: %w", network, addr, err)
	}
	opt = opt.withDefaults()
	ln, err := sockets.Listen("slip", network, addr, opt.Logger)
	if err != nil {
		return nil, err
	}
	return &Listener{ln: ln, opt: opt}, nil
}

// Accept waits for the next connection and returns it as a *Port. After
// Close it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (ports.Port, error) {
	conn, n, err := l.ln.Accept()
	if err != nil {
		return nil, err
	}
	name := l.ln.ConnName(n, conn.RemoteAddr())
	opt := l.opt
	if opt.Mode == ModeIP && opt.MAC == nil {
		// Not from name: a tcp peer's address changes with every connection.
		opt.MAC = DeriveMAC(l.ln.ConnName(n, nil))
	}
	l.opt.Logger.Info("connection accepted", "port", name)
	return accepted(name, conn, opt), nil
}

// Addr is where peers connect: the socket path, or the tcp address bound.
func (l *Listener) Addr() string { return l.ln.Addr() }

// String describes the listener for logs, e.g. "slip unix:/tmp/slip.sock".
func (l *Listener) String() string { return l.ln.String() }

// Close stops accepting and removes the unix socket file if it is still the
// one Listen bound. Accepted ports stay open. It is safe to call twice.
func (l *Listener) Close() error { return l.ln.Close() }
