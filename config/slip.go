package config

import (
	"fmt"
	"net"

	"github.com/zswitch/zswitch/ports/slip"
)

// SLIP over the second UART of Zephyr's QEMU boards (CONFIG_SLIP_TAP=y:
// Ethernet frames in SLIP), and boards on a real serial line.
func init() {
	common := []string{"mode", "max-frame"}
	kinds["slip-listen"] = &kind{
		transports: []string{"unix", "tcp"},
		keys:       common,
		example:    "slip-listen:unix:/tmp/slip.sock",
		summary:    "accept QEMU serial ports (-serial unix:PATH); one port per connection, again after QEMU restarts",
		check:      checkSLIP(true),
		open: func(sp Spec, env Env) (Opened, error) {
			l, err := slip.Listen(sp.Transport, sp.Address, slipOptions(sp, env))
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
				return []string{"-serial unix:" + addr}
			}
			return []string{"-serial tcp:" + addr}
		},
	}
	kinds["slip-connect"] = &kind{
		transports: []string{"unix", "tcp"},
		keys:       common,
		example:    "slip-connect:unix:/tmp/slip.sock",
		summary:    "dial a QEMU serial port that listens (-serial unix:PATH,server=on,wait=off); redials when it restarts",
		check:      checkSLIP(false),
		open: func(sp Spec, env Env) (Opened, error) {
			p, err := slip.Dial(sp.Transport, sp.Address, slipOptions(sp, env))
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		qemu: func(sp Spec, _ Opened) []string {
			if sp.Transport == "unix" {
				return []string{"-serial unix:" + sp.Address + ",server=on,wait=off"}
			}
			return []string{"-serial tcp:" + sp.Address + ",server=on,wait=off"}
		},
	}
	kinds["slip-pty"] = &kind{
		keys:    common,
		example: "slip-pty:/tmp/slip.dev",
		summary: "create a pty and link its device at ADDRESS, for -serial /tmp/slip.dev or an emulator",
		check:   checkSLIP(false),
		open: func(sp Spec, env Env) (Opened, error) {
			p, err := slip.OpenPTY(sp.Address, slipOptions(sp, env))
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		qemu: func(sp Spec, _ Opened) []string { return []string{"-serial " + sp.Address} },
	}
	kinds["slip-tty"] = &kind{
		keys:    append([]string{"baud"}, common...),
		example: "slip-tty:/dev/ttyUSB0,baud=115200",
		summary: "a board running Zephyr's SLIP driver on a real serial line",
		check:   checkSLIP(false),
		open: func(sp Spec, env Env) (Opened, error) {
			baud, _ := intOption(sp, "baud", 115200, 50, 4000000)
			p, err := slip.OpenTTY(sp.Address, baud, slipOptions(sp, env))
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		hint: func(sp Spec, _ Opened) []string {
			return []string{"the board's SLIP UART is " + sp.Address}
		},
	}
}

func checkSLIP(listen bool) func(Spec) error {
	return func(sp Spec) error {
		// mode=ip: raw IP in SLIP (CONFIG_SLIP_TAP=n, Linux's slip
		// driver); the port answers ARP/ND for the device.
		if _, err := slip.ParseMode(sp.Options["mode"]); err != nil {
			return fmt.Errorf("option mode: %q is not eth or ip", sp.Options["mode"])
		}
		if _, err := intOption(sp, "max-frame", slip.DefaultMaxFrame, 64, 9216); err != nil {
			return err
		}
		if _, err := intOption(sp, "baud", 115200, 50, 4000000); err != nil {
			return err
		}
		switch sp.Transport {
		case "unix":
			return checkUnixPath(sp.Address)
		case "tcp":
			if _, _, err := net.SplitHostPort(sp.Address); err != nil {
				return fmt.Errorf("address: %q is not HOST:PORT", sp.Address)
			}
			return checkHostPort(sp.Address, listen)
		}
		return nil
	}
}

func slipOptions(sp Spec, env Env) slip.Options {
	mf, _ := intOption(sp, "max-frame", slip.DefaultMaxFrame, 64, 9216)
	mode, _ := slip.ParseMode(sp.Options["mode"])
	return slip.Options{MaxFrame: mf, Logger: env.Logger, Mode: mode}
}
