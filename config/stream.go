package config

import (
	"fmt"
	"net"
	"strconv"

	"github.com/zswitch/zswitch/ports/stream"
)

// QEMU's -netdev stream and the legacy -netdev socket,listen|connect: a
// 4-byte big-endian length before every frame, over unix or TCP sockets.
func init() {
	kinds["stream-listen"] = &kind{
		transports: []string{"unix", "tcp"},
		keys:       []string{"write-timeout"},
		example:    "stream-listen:unix:/tmp/zswitch.sock",
		summary:    "accept any number of QEMUs (-netdev stream,server=off / socket,connect=); one port per connection",
		check:      checkStream,
		open: func(sp Spec, env Env) (Opened, error) {
			opt, err := streamOptions(sp, env)
			if err != nil {
				return Opened{}, err
			}
			l, err := stream.Listen(sp.Transport, sp.Address, opt)
			if err != nil {
				return Opened{}, err
			}
			return Opened{Listener: l}, nil
		},
		qemu: func(sp Spec, o Opened) []string {
			addr := sp.Address
			if o.Listener != nil {
				addr = o.Listener.Addr()
			}
			if sp.Transport == "unix" {
				return []string{"-netdev stream,id=net0,server=off,addr.type=unix,addr.path=" + addr}
			}
			host, port, _ := net.SplitHostPort(addr)
			return []string{
				fmt.Sprintf("-netdev stream,id=net0,server=off,addr.type=inet,addr.host=%s,addr.port=%s", host, port),
				"-netdev socket,id=net0,connect=" + addr,
			}
		},
	}
	kinds["stream-connect"] = &kind{
		transports: []string{"unix", "tcp"},
		keys:       []string{"write-timeout", "backoff-max"},
		example:    "stream-connect:tcp:127.0.0.1:5556",
		summary:    "dial one listening QEMU (-netdev stream,server=on / socket,listen=); redials when it restarts",
		check:      checkStream,
		open: func(sp Spec, env Env) (Opened, error) {
			opt, err := streamOptions(sp, env)
			if err != nil {
				return Opened{}, err
			}
			c, err := stream.Dial(sp.Transport, sp.Address, opt)
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: c}, nil
		},
		qemu: func(sp Spec, _ Opened) []string {
			if sp.Transport == "unix" {
				return []string{"-netdev stream,id=net0,server=on,addr.type=unix,addr.path=" + sp.Address}
			}
			host, port, _ := net.SplitHostPort(sp.Address)
			return []string{
				fmt.Sprintf("-netdev stream,id=net0,server=on,addr.type=inet,addr.host=%s,addr.port=%s", host, port),
				"-netdev socket,id=net0,listen=" + sp.Address,
			}
		},
	}
}

func checkStream(sp Spec) error {
	if sp.Transport == "unix" {
		return checkUnixPath(sp.Address)
	}
	if err := checkHostPort(sp.Address, sp.Kind == "stream-listen"); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	_, err := streamOptions(sp, Env{})
	return err
}

func streamOptions(sp Spec, env Env) (stream.Options, error) {
	wt, err := durationOption(sp, "write-timeout", stream.DefaultWriteTimeout)
	if err != nil {
		return stream.Options{}, err
	}
	bmax, err := durationOption(sp, "backoff-max", stream.DefaultBackoffMax)
	if err != nil {
		return stream.Options{}, err
	}
	return stream.Options{WriteTimeout: wt, BackoffMax: bmax, Logger: env.Logger}, nil
}

// checkUnixPath rejects paths the kernel would refuse (sun_path is 108
// bytes with its terminating NUL).
func checkUnixPath(p string) error {
	if len(p) > 107 {
		return fmt.Errorf("address: unix socket path is %d bytes, the limit is 107", len(p))
	}
	return nil
}

// checkHostPort wants HOST:PORT; a listener may use port 0 (any free one),
// and an empty host (every address).
func checkHostPort(a string, zeroOK bool) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT (%v)", a, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" && !zeroOK {
		return fmt.Errorf("%q has no host", a)
	}
	return nil
}
