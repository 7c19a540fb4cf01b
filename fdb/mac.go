package fdb

import (
	"fmt"
	"net"
)

// MAC is a 48-bit IEEE 802 address. Like netip.Addr it is a comparable
// value: use it as a map key and compare it with ==.
type MAC [6]byte

// ParseMAC parses the usual colon- or dash-separated forms.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("invalid MAC address %q: want six hex bytes like 52:54:00:12:34:56", s)
	}
	return MAC(hw), nil
}

// IsGroup reports whether m is a multicast or broadcast address.
func (m MAC) IsGroup() bool { return m[0]&1 == 1 }

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// MarshalText lets MACs appear as text in JSON and YAML.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText parses a MAC from JSON or YAML.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Key is what the table learns: a MAC within a VLAN (802.1Q independent
// VLAN learning). VLAN 0 is the untagged segment.
type Key struct {
	MAC  MAC
	VLAN uint16
}

// word packs a key into 64 bits (12-bit VLAN, 48-bit MAC), plus one so
// that zero marks an empty slot.
func (k Key) word() uint64 {
	m := k.MAC
	w := uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
	return (uint64(k.VLAN&0xfff)<<48 | w) + 1
}

func keyFromWord(w uint64) Key {
	w--
	return Key{
		MAC:  MAC{byte(w >> 40), byte(w >> 32), byte(w >> 24), byte(w >> 16), byte(w >> 8), byte(w)},
		VLAN: uint16(w>>48) & 0xfff,
	}
}
