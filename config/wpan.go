package config

import (
	"fmt"
	"strings"

	"github.com/zswitch/zswitch/ports/wpan"
)

// SegmentWPAN marks kinds that join an IEEE 802.15.4 medium instead of the
// Ethernet switch: their frames are never bridged to Ethernet.
const SegmentWPAN = "802.15.4"

// IEEE 802.15.4 over the UART pipe of Zephyr's QEMU boards
// (CONFIG_IEEE802154_UPIPE): 0xF0, LEN, PSDU.
func init() {
	keys := []string{"medium"}
	kinds["wpan-pipe"] = &kind{
		keys:    keys,
		segment: SegmentWPAN,
		example: "wpan-pipe:/tmp/ip-stack-server",
		summary: "QEMU -serial pipe:PATH: zswitch creates PATH.in and PATH.out; medium= picks the radio medium",
		check:   checkWPAN,
		open: func(sp Spec, env Env) (Opened, error) {
			p, err := wpan.OpenPipe(sp.Address, wpan.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		qemu: func(sp Spec, _ Opened) []string { return []string{"-serial pipe:" + sp.Address} },
	}
	kinds["wpan-listen"] = &kind{
		transports: []string{"unix"},
		keys:       keys,
		segment:    SegmentWPAN,
		example:    "wpan-listen:unix:/tmp/slip.sock",
		summary:    "accept QEMU serial ports (-serial unix:PATH) carrying 802.15.4; one node per connection",
		check:      checkWPAN,
		open: func(sp Spec, env Env) (Opened, error) {
			l, err := wpan.Listen(sp.Transport, sp.Address, wpan.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Listener: l}, nil
		},
		qemu: func(sp Spec, _ Opened) []string { return []string{"-serial unix:" + sp.Address} },
	}
	kinds["wpan-connect"] = &kind{
		transports: []string{"unix"},
		keys:       keys,
		segment:    SegmentWPAN,
		example:    "wpan-connect:unix:/tmp/node1.sock",
		summary:    "dial a QEMU serial port that listens (-serial unix:PATH,server=on,wait=off)",
		check:      checkWPAN,
		open: func(sp Spec, env Env) (Opened, error) {
			p, err := wpan.Dial(sp.Transport, sp.Address, wpan.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		qemu: func(sp Spec, _ Opened) []string {
			return []string{"-serial unix:" + sp.Address + ",server=on,wait=off"}
		},
	}
	kinds["wpan-pty"] = &kind{
		keys:    keys,
		segment: SegmentWPAN,
		example: "wpan-pty:/tmp/wpan.dev",
		summary: "create a pty for an 802.15.4 UART and link its device at ADDRESS",
		check:   checkWPAN,
		open: func(sp Spec, env Env) (Opened, error) {
			p, err := wpan.OpenPTY(sp.Address, wpan.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: p}, nil
		},
		qemu: func(sp Spec, _ Opened) []string { return []string{"-serial " + sp.Address} },
	}
}

func checkWPAN(sp Spec) error {
	if m, ok := sp.Options["medium"]; ok {
		if strings.ContainsAny(m, " /\"'") {
			return fmt.Errorf("option medium: %q must not contain spaces, '/' or quotes", m)
		}
	}
	if sp.Transport == "unix" || sp.Kind == "wpan-pipe" {
		return checkUnixPath(sp.Address + ".out")
	}
	return nil
}

// Segment says which kind of segment a spec joins: "" for the Ethernet
// switch, SegmentWPAN for an 802.15.4 medium.
func Segment(sp Spec) string {
	if k, ok := kinds[sp.Kind]; ok {
		return k.segment
	}
	return ""
}

// MediumName is the 802.15.4 medium a wpan spec joins.
func MediumName(sp Spec) string {
	if m := sp.Options["medium"]; m != "" {
		return m
	}
	return DefaultMedium
}

// DefaultMedium is the medium of wpan ports without medium=.
const DefaultMedium = "default"
