package config

import (
	"fmt"
	"net/netip"

	"github.com/zswitch/zswitch/ports/mcast"
)

// QEMU's multicast hubs (-netdev socket,mcast= or -netdev dgram with a
// multicast remote): the whole hub segment becomes one switch port.
func init() {
	kinds["mcast"] = &kind{
		keys:    []string{"localaddr"},
		example: "mcast:230.0.0.1:1234,localaddr=127.0.0.1",
		summary: "join a QEMU multicast hub as one port (-netdev socket,mcast=); localaddr= picks the interface (default 127.0.0.1)",
		check: func(sp Spec) error {
			_, _, err := mcastEnds(sp)
			return err
		},
		open: func(sp Spec, env Env) (Opened, error) {
			group, local, err := mcastEnds(sp)
			if err != nil {
				return Opened{}, err
			}
			c, err := mcast.Join(group, local, mcast.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: c}, nil
		},
		qemu: func(sp Spec, _ Opened) []string {
			group, local, _ := mcastEnds(sp)
			return []string{
				fmt.Sprintf("-netdev socket,id=net0,mcast=%v,localaddr=%v", group, local),
				fmt.Sprintf("-netdev dgram,id=net0,remote.type=inet,remote.host=%v,remote.port=%d,local.type=inet,local.host=%v,local.port=0", group.Addr(), group.Port(), local),
			}
		},
	}
}

func mcastEnds(sp Spec) (group netip.AddrPort, local netip.Addr, err error) {
	group, err = netip.ParseAddrPort(sp.Address)
	if err != nil || !group.Addr().Is4() || !group.Addr().IsMulticast() || group.Port() == 0 {
		return group, local, fmt.Errorf("address: %q is not an IPv4 multicast GROUP:PORT like 230.0.0.1:1234", sp.Address)
	}
	local = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	if v, ok := sp.Options["localaddr"]; ok {
		if local, err = netip.ParseAddr(v); err != nil || !local.Is4() {
			return group, local, fmt.Errorf("option localaddr: %q is not an IPv4 address", v)
		}
	}
	return group, local, nil
}
