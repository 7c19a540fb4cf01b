package wpan

import (
	"context"
	"fmt"
	"net"
	"time"
)

// dialTimeout bounds one connection attempt of Dial.
const dialTimeout = 5 * time.Second

// A dialer is the connect side of a dialled port.
type dialer struct {
	network, addr string
	min, max      time.Duration
	ctx           context.Context // cancelled by Close: stops a dial in progress
	cancel        context.CancelFunc
}

// Dial returns a port that connects to a QEMU listening at addr (-serial
// unix:PATH,server=on,wait=off), on network "unix" or "tcp", and connects
// again whenever the connection fails or drops, waiting from
// Options.BackoffMin (50 ms) doubling up to BackoffMax (2 s) between
// attempts. It returns at once; only bad arguments are errors.
//
// While the port is down, WriteFrames drops frames as link_down and
// ReadFrames waits. It counts Connects, Disconnects, failed dials (Errors)
// and keeps LinkUp.
func Dial(network, addr string, opt Options) (*Port, error) {
	name := fmt.Sprintf("wpan %s:%s", network, addr)
	switch network {
	case "unix", "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%s: network must be unix or tcp", name)
	}
	if addr == "" {
		return nil, fmt.Errorf("%s: no address", name)
	}
	opt = opt.withDefaults()
	p := newPort(name, modeDialled, opt)
	ctx, cancel := context.WithCancel(context.Background())
	p.dial = &dialer{network: network, addr: addr, min: opt.BackoffMin, max: opt.BackoffMax, ctx: ctx, cancel: cancel}
	p.up = make(chan struct{}, 1)
	p.wg.Go(p.routineDial)
	opt.Logger.Info("port open", "port", name)
	return p, nil
}

// routineDial keeps p connected until Close: it dials, publishes the
// connection, waits for it to die, and starts again.
func (p *Port) routineDial() {
	d := net.Dialer{Timeout: dialTimeout}
	backoff, failing := p.dial.min, false
	for {
		conn, err := d.DialContext(p.dial.ctx, p.dial.network, p.dial.addr)
		if err != nil {
			if p.closed.Load() {
				return
			}
			p.Errors.Add(1)
			if !failing {
				failing = true
				p.log.Info("peer not reachable; dialling until it is", "port", p.name, "err", err)
			}
			if !p.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, p.dial.max)
			continue
		}
		failing, backoff = false, p.dial.min
		s := newSession(conn)
		p.cur.Store(s)
		p.LinkUp.Store(true)
		p.Connects.Add(1)
		p.log.Info("connected", "port", p.name)
		select {
		case p.up <- struct{}{}:
		default:
		}
		select {
		case <-s.dead:
		case <-p.done:
			p.kill(s, p.errClosed) // Close may have looked before s was stored
			return
		}
		if p.closed.Load() {
			return
		}
		p.Disconnects.Add(1)
		p.log.Info("disconnected; dialling again", "port", p.name, "err", s.err)
		// Even after a good connection: a peer that accepts and hangs up
		// at once must not make this loop spin.
		if !p.sleep(backoff) {
			return
		}
	}
}
