package wpan

import (
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// A Listener accepts stream connections, each from one QEMU
// (-serial unix:PATH), and makes each a port of its own.
type Listener struct {
	ln  *sockets.Listener
	opt Options
}

var _ ports.Listener = (*Listener)(nil)

// Listen listens on addr, on network "unix" (a socket path; '@' starts an
// abstract one) or "tcp" (for QEMU's -serial tcp:HOST:PORT). A unix socket
// file left by a process that is gone is replaced; one a live process
// listens on is an error. Close removes the file.
func Listen(network, addr string, opt Options) (*Listener, error) {
	opt = opt.withDefaults()
	ln, err := sockets.Listen("wpan", network, addr, opt.Logger)
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
	name := l.ln.ConnName(n, nil) // no peer address: "wpan unix:PATH#n"
	l.opt.Logger.Info("connection accepted", "port", name)
	return newPort(name, modeAccepted, l.opt).withLink(conn), nil
}

// Addr is where peers connect: the socket path, or the tcp address bound.
func (l *Listener) Addr() string { return l.ln.Addr() }

// String describes the listener for logs.
func (l *Listener) String() string { return l.ln.String() }

// Close stops accepting and removes the unix socket file if it is still the
// one Listen bound. Accepted ports stay open. It is safe to call twice.
func (l *Listener) Close() error { return l.ln.Close() }
