package wpan

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/zswitch/zswitch/ports/internal/sockets"
)

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
	if err := sockets.CheckDial(network, addr); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	p := newPort(name, modeDialled, opt)
	ctx, cancel := context.WithCancel(context.Background())
	p.stopDial = cancel
	p.up = make(chan struct{}, 1)
	r := &sockets.Redialer[net.Conn]{
		Dial:   sockets.Dialer(network, addr),
		Min:    opt.BackoffMin,
		Max:    opt.BackoffMax,
		Failed: p.dialFailed,
		Serve:  p.serve,
	}
	p.wg.Go(func() { r.Run(ctx) })
	opt.Logger.Info("port open", "port", name)
	return p, nil
}

// dialFailed counts a failed dial, and logs the first of a run.
func (p *Port) dialFailed(err error, first bool, _ time.Duration) {
	p.Errors.Add(1)
	if first {
		p.log.Info("peer not reachable; dialling until it is", "port", p.name, "err", err)
	}
}

// serve publishes a dialled connection and waits for it to die. It
// reports whether to dial again: not after Close.
func (p *Port) serve(conn net.Conn) bool {
	s := sockets.NewSession[link](conn)
	p.cur.Store(s)
	p.LinkUp.Store(true)
	p.Connects.Add(1)
	p.log.Info("connected", "port", p.name)
	select {
	case p.up <- struct{}{}:
	default:
	}
	select {
	case <-s.Dead():
	case <-p.done:
		p.kill(s, p.errClosed) // Close may have looked before s was stored
		return false
	}
	if p.closed.Load() {
		return false
	}
	p.Disconnects.Add(1)
	p.log.Info("disconnected; dialling again", "port", p.name, "err", s.Err())
	return true
}
