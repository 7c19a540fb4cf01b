package slip

import (
	"context"
	"fmt"

	"github.com/zswitch/zswitch/ports/internal/sockets"
)

// Dial returns a port that connects to a listening peer at addr, on
// network "unix" or "tcp" ("tcp4", "tcp6"), typically QEMU with -serial
// unix:PATH,server=on. It connects again whenever the connection fails or
// drops, waiting from Options.BackoffMin up to BackoffMax between
// attempts, and starts every connection with a lone End. It returns at
// once; only bad arguments are errors.
//
// While the port is down, WriteFrames drops frames as link_down and
// ReadFrames waits. It counts Connects, Disconnects, failed dials (Errors)
// and keeps LinkUp.
func Dial(network, addr string, opt Options) (*Port, error) {
	name := fmt.Sprintf("slip %s:%s", network, addr)
	if err := sockets.CheckDial(network, addr); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	p := newPort(name, opt)
	dial := sockets.Dialer(network, addr)
	p.keepLinked("dial", func(ctx context.Context) (endpoint, error) {
		return dial(ctx)
	}, opt)
	opt.Logger.Info("port open", "port", name)
	return p, nil
}
