// Package sockets holds the socket plumbing that the byte-stream ports
// (stream, wpan, slip) share: a Listener for unix and tcp sockets that
// replaces a stale unix socket file and removes only its own, and a
// Redialer that keeps a connection up, waiting longer after every failure.
//
// It knows nothing of framing or of ports.Port: a port package wraps a
// Listener in its own Listener type and runs a Redialer from its Dial,
// keeping its connection state (sessions, counters) to itself.
package sockets

import (
	"errors"
	"time"
)

// DialTimeout bounds one connection attempt of a Dialer.
const DialTimeout = 5 * time.Second

// Errors for bad arguments, without the port's name: a port package wraps
// them as "NAME: err".
var (
	ErrNetwork = errors.New("network must be unix or tcp")
	ErrNoPath  = errors.New("no path")
	ErrNoAddr  = errors.New("no address")
)

// isStream reports whether network is one Listen and Dialer take.
func isStream(network string) bool {
	switch network {
	case "unix", "tcp", "tcp4", "tcp6":
		return true
	}
	return false
}
