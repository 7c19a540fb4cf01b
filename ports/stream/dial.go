package stream

import (
	"context"
	"fmt"
	"net"
	"time"
)

// A dialer is the connect side of a dialled Conn.
type dialer struct {
	network, addr string
	min, max      time.Duration
	ctx           context.Context // cancelled by Close: stops a dial in progress
	cancel        context.CancelFunc
}

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
	switch network {
	case "unix", "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%s: network must be unix or tcp", name)
	}
	if addr == "" {
		return nil, fmt.Errorf("%s: no address", name)
	}
	opt = opt.withDefaults()
	c := newConn(name, opt)
	ctx, cancel := context.WithCancel(context.Background())
	c.dial = &dialer{network: network, addr: addr, min: opt.BackoffMin, max: opt.BackoffMax, ctx: ctx, cancel: cancel}
	c.up = make(chan struct{}, 1)
	c.wg.Go(c.routineDial)
	opt.Logger.Info("port open", "port", name)
	return c, nil
}

// routineDial keeps c connected until Close: it dials, publishes the
// connection, waits for it to die, and starts again.
func (c *Conn) routineDial() {
	d := net.Dialer{Timeout: dialTimeout}
	backoff, failing := c.dial.min, false
	for {
		conn, err := d.DialContext(c.dial.ctx, c.dial.network, c.dial.addr)
		if err != nil {
			if c.closed.Load() {
				return
			}
			c.Errors.Add(1)
			if !failing {
				failing = true
				c.log.Info("peer not reachable; dialling until it is", "port", c.name, "err", err)
			} else {
				c.log.Debug("dial failed", "port", c.name, "err", err, "retry_in", backoff)
			}
			if !c.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, c.dial.max)
			continue
		}
		failing, backoff = false, c.dial.min
		s := newSession(conn)
		c.cur.Store(s)
		c.LinkUp.Store(true)
		c.Connects.Add(1)
		c.log.Info("connected", "port", c.name)
		select {
		case c.up <- struct{}{}:
		default:
		}
		select {
		case <-s.dead:
		case <-c.done:
			c.kill(s, c.errClosed) // Close may have looked before s was stored
			return
		}
		if c.closed.Load() {
			return
		}
		c.Disconnects.Add(1)
		c.log.Info("disconnected; dialling again", "port", c.name, "err", s.err)
		// Even after a good connection: a peer that accepts and hangs up
		// at once must not make this loop spin.
		if !c.sleep(backoff) {
			return
		}
	}
}
