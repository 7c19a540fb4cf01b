package config

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/zswitch/zswitch/ports/dgram"
)

// QEMU's -netdev dgram and legacy -netdev socket,udp=: one frame per
// datagram between two fixed addresses, over UDP or unix datagram sockets.
func init() {
	kinds["dgram"] = &kind{
		transports: []string{"udp", "unix"},
		keys:       []string{"remote"},
		example:    "dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001",
		summary:    "one QEMU over datagrams (-netdev dgram / socket,udp=); ADDRESS is zswitch's end, remote= the guest's",
		check: func(sp Spec) error {
			if _, ok := sp.Options["remote"]; !ok {
				return fmt.Errorf("option remote: missing; the guest's address, e.g. %s", kinds["dgram"].example)
			}
			if sp.Transport == "unix" {
				if err := checkUnixPath(sp.Address); err != nil {
					return err
				}
				if err := checkUnixPath(sp.Options["remote"]); err != nil {
					return fmt.Errorf("option remote: %w", err)
				}
				return nil
			}
			_, _, err := udpEnds(sp)
			return err
		},
		open: func(sp Spec, env Env) (Opened, error) {
			opt := dgram.Options{Logger: env.Logger}
			var (
				c   *dgram.Conn
				err error
			)
			if sp.Transport == "unix" {
				c, err = dgram.OpenUnix(sp.Address, sp.Options["remote"], opt)
			} else {
				local, remote, perr := udpEnds(sp)
				if perr != nil {
					return Opened{}, perr
				}
				c, err = dgram.OpenUDP(local, remote, opt)
			}
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: c}, nil
		},
		qemu: func(sp Spec, o Opened) []string {
			remote := sp.Options["remote"]
			if sp.Transport == "unix" {
				return []string{fmt.Sprintf("-netdev dgram,id=net0,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", remote, sp.Address)}
			}
			local := sp.Address
			if c, ok := o.Port.(*dgram.Conn); ok {
				local = c.LocalAddr().String()
			}
			lh, lp, _ := net.SplitHostPort(local)
			rh, rp, _ := net.SplitHostPort(remote)
			return []string{
				fmt.Sprintf("-netdev dgram,id=net0,local.type=inet,local.host=%s,local.port=%s,remote.type=inet,remote.host=%s,remote.port=%s", rh, rp, lh, lp),
				fmt.Sprintf("-netdev socket,id=net0,udp=%s,localaddr=%s", local, remote),
			}
		},
	}
}

// udpEnds parses zswitch's and the guest's UDP addresses.
func udpEnds(sp Spec) (local, remote netip.AddrPort, err error) {
	if local, err = parseAddrPort(sp.Address, true); err != nil {
		return local, remote, fmt.Errorf("address: %w", err)
	}
	if remote, err = parseAddrPort(sp.Options["remote"], false); err != nil {
		return local, remote, fmt.Errorf("option remote: %w", err)
	}
	if remote.Addr().IsMulticast() {
		return local, remote, fmt.Errorf("option remote: %v is a multicast group; use mcast:%v", remote.Addr(), remote)
	}
	if local.Addr().Is4() != remote.Addr().Is4() {
		return local, remote, fmt.Errorf("option remote: %v and address %v are of different IP families", remote, local)
	}
	return local, remote, nil
}

// parseAddrPort takes IP:PORT or HOST:PORT (resolved now, once).
func parseAddrPort(s string, zeroOK bool) (netip.AddrPort, error) {
	if err := checkHostPort(s, zeroOK); err != nil {
		return netip.AddrPort{}, err
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ua, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %v", s, err)
	}
	return netip.AddrPortFrom(ua.AddrPort().Addr().Unmap(), ua.AddrPort().Port()), nil
}
