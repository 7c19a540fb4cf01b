package stream

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// Dial returns a port that connects to a listening QEMU at addr, on network
// "unix" or "tcp" ("tcp4", "tcp6"), and connects again whenever the
// connection fails or drops, waiting from Options.BackoffMin up to
// BackoffMax between attempts. It returns at once; only bad arguments are
// errors.
//
// While the port is down, WriteFrames drops frames as link_down and
// ReadFrames waits. It counts Connects, Disconnects, failed dials (Errors)
// and keeps LinkUp.
func Dial(network, addr string, opt Options) (*Conn, error) {
	name := fmt.Sprintf("stream %s:%s", network, addr)
	if err := sockets.CheckDial(network, addr); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	c := newConn(name, opt)
	ctx, cancel := context.WithCancel(context.Background())
	c.dialled, c.stopDial = true, cancel
	c.up = make(chan struct{}, 1)
	r := &sockets.Redialer[net.Conn]{
		Dial:   sockets.Dialer(network, addr),
		Min:    opt.BackoffMin,
		Max:    opt.BackoffMax,
		Failed: c.dialFailed,
		Serve:  c.serve,
	}
	c.wg.Go(func() { r.Run(ctx) })
	opt.Logger.Info("port open", "port", name)
	return c, nil
}

// dialFailed counts and logs a failed dial.
func (c *Conn) dialFailed(err error, first bool, retryIn time.Duration) {
	c.Errors.Add(1)
	if first {
		c.log.Info("peer not reachable; dialling until it is", "port", c.name, "err", err)
	} else {
		c.log.Debug("dial failed", "port", c.name, "err", err, "retry_in", retryIn)
	}
}

// serve publishes a dialled connection and waits for it to die. It
// reports whether to dial again: not after Close.
func (c *Conn) serve(conn net.Conn) bool {
	s := sockets.NewSession(conn)
	c.cur.Store(s)
	c.LinkUp.Store(true)
	c.Connects.Add(1)
	c.log.Info("connected", "port", c.name)
	select {
	case c.up <- struct{}{}:
	default:
	}
	select {
	case <-s.Dead():
	case <-c.done:
		c.kill(s, c.errClosed) // Close may have looked before s was stored
		return false
	}
	if c.closed.Load() {
		return false
	}
	c.Disconnects.Add(1)
	c.log.Info("disconnected; dialling again", "port", c.name, "err", s.Err())
	return true
}
