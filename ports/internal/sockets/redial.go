package sockets

import (
	"context"
	"fmt"
	"net"
	"time"
)

// CheckDial checks the arguments of a port's Dial: network "unix" or
// "tcp" ("tcp4", "tcp6") and a non-empty addr. Its errors carry no name.
func CheckDial(network, addr string) error {
	if !isStream(network) {
		return ErrNetwork
	}
	if addr == "" {
		return ErrNoAddr
	}
	return nil
}

// Dialer returns a Redialer.Dial that connects to addr on network, each
// attempt bounded by DialTimeout and by its context.
func Dialer(network, addr string) func(context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: DialTimeout}
	return func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}

// A Redialer keeps a link up: it connects (Dial), hands the connection to
// Serve until that returns, and connects again. A failed attempt is
// retried after Min, each further one after twice as long as the last, up
// to Max; a connection resets the wait to Min. Even after a good
// connection Run waits Min before the next attempt, so a peer that accepts
// and hangs up at once does not make it spin.
//
// C is what Dial opens: a net.Conn, or any other endpoint (a device file).
type Redialer[C any] struct {
	// Dial makes one attempt. Its context is the one Run got: cancelling
	// it stops an attempt in progress.
	Dial func(ctx context.Context) (C, error)
	// Min and Max bound the wait between attempts; Min > 0, Max >= Min.
	Min, Max time.Duration
	// Failed, if not nil, is told of every failed attempt but those after
	// the context is done: the error, whether it is the first of a run of
	// failures (a connection ends a run), and the wait before the next.
	// It counts failures and logs them.
	Failed func(err error, first bool, retryIn time.Duration)
	// Serve owns conn until the connection ends: it publishes it, waits
	// for it to die, and returns true to connect again or false to stop
	// (the port is closing). It must close conn.
	Serve func(conn C) (again bool)
}

// Run connects and reconnects until ctx is done or Serve returns false.
// Cancelling ctx stops a dial in progress and the wait between attempts;
// it does not end a connection Serve holds: the caller does.
func (r *Redialer[C]) Run(ctx context.Context) {
	if r.Min <= 0 || r.Max < r.Min {
		panic(fmt.Sprintf("sockets: Redialer backoff %v..%v", r.Min, r.Max))
	}
	backoff, failing := r.Min, false
	for {
		conn, err := r.Dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if r.Failed != nil {
				r.Failed(err, !failing, backoff)
			}
			failing = true
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, r.Max)
			continue
		}
		failing, backoff = false, r.Min
		if !r.Serve(conn) {
			return
		}
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// sleep waits d, or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
