package config

import (
	"fmt"
	"os/user"
	"strconv"

	"github.com/zswitch/zswitch/ports/packet"
	"github.com/zswitch/zswitch/ports/tap"
)

// Host ports: a TAP that puts the Linux host on the switch (what
// net-setup.sh plus a bridge did), and a raw attach to an interface some
// other program owns (native_sim's zeth, a USB CDC-ECM board, a veth).
func init() {
	kinds["tap"] = &kind{
		keys:    []string{"persist", "mtu", "user", "group"},
		example: "tap:zeth0,mtu=1500",
		summary: "create (or open a persistent) TAP: the host's own interface on the switch; removed at exit unless persist=true",
		check: func(sp Spec) error {
			if err := checkIfName(sp.Address); err != nil {
				return err
			}
			_, err := tapOptions(sp, Env{})
			return err
		},
		open: func(sp Spec, env Env) (Opened, error) {
			opt, err := tapOptions(sp, env)
			if err != nil {
				return Opened{}, err
			}
			d, err := tap.Open(sp.Address, opt)
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: d}, nil
		},
		hint: func(sp Spec, _ Opened) []string {
			return []string{fmt.Sprintf("the host reaches the switch through %s: ip addr add ADDRESS/PREFIX dev %s (or move it into a netns)", sp.Address, sp.Address)}
		},
	}
	kinds["packet"] = &kind{
		example: "packet:zeth",
		summary: "attach to an existing interface (native_sim's zeth, a USB CDC-ECM enx…, a veth) with AF_PACKET; survives it vanishing and coming back",
		check:   func(sp Spec) error { return checkIfName(sp.Address) },
		open: func(sp Spec, env Env) (Opened, error) {
			c, err := packet.Open(sp.Address, packet.Options{Logger: env.Logger})
			if err != nil {
				return Opened{}, err
			}
			return Opened{Port: c}, nil
		},
		hint: func(sp Spec, _ Opened) []string {
			return []string{fmt.Sprintf("frames on %s are switched; a native_sim instance uses it with zephyr.exe --eth-if=%s", sp.Address, sp.Address)}
		},
	}
}

// checkIfName applies the kernel's rules for interface names (IFNAMSIZ).
func checkIfName(n string) error {
	if len(n) > 15 {
		return fmt.Errorf("address: interface name %q is %d bytes, the kernel allows 15", n, len(n))
	}
	for _, c := range n {
		if c == '/' || c == ':' || c <= ' ' {
			return fmt.Errorf("address: interface name %q contains %q", n, c)
		}
	}
	return nil
}

func tapOptions(sp Spec, env Env) (tap.Options, error) {
	opt := tap.Options{Logger: env.Logger, Owner: -1, Group: -1}
	p, err := boolOption(sp, "persist")
	if err != nil {
		return opt, err
	}
	opt.Persist = p
	mtu, err := intOption(sp, "mtu", 0, 68, 9198) // 9198 + 18 fills a 9216-byte jumbo slot
	if err != nil {
		return opt, err
	}
	opt.MTU = mtu
	if v, ok := sp.Options["user"]; ok {
		if opt.Owner, err = lookupID(v, user.Lookup, func(u *user.User) string { return u.Uid }); err != nil {
			return opt, fmt.Errorf("option user: %w", err)
		}
	}
	if v, ok := sp.Options["group"]; ok {
		if opt.Group, err = lookupID(v, user.LookupGroup, func(g *user.Group) string { return g.Gid }); err != nil {
			return opt, fmt.Errorf("option group: %w", err)
		}
	}
	if (opt.Owner >= 0 || opt.Group >= 0) && !opt.Persist {
		return opt, fmt.Errorf("option user/group: only useful with persist=true (they let that user open the TAP later)")
	}
	return opt, nil
}

// lookupID takes a numeric id or a name.
func lookupID[T any](v string, lookup func(string) (T, error), id func(T) string) (int, error) {
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return n, nil
	}
	x, err := lookup(v)
	if err != nil {
		return -1, fmt.Errorf("%q: no such name", v)
	}
	return strconv.Atoi(id(x))
}
