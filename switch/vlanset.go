package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxVLAN is the highest usable 802.1Q VLAN ID (4095 is reserved).
const MaxVLAN = 4094

// A VLANSet is a set of VLAN IDs 1..4094, a bitmap: membership tests on
// the datapath are one load and a mask.
type VLANSet [64]uint64

// AllVLANs holds every VLAN ID.
func AllVLANs() VLANSet {
	var s VLANSet
	for v := uint16(1); v <= MaxVLAN; v++ {
		s.Add(v)
	}
	return s
}

// Has reports whether v is in the set.
func (s *VLANSet) Has(v uint16) bool { return v <= MaxVLAN && s[v>>6]&(1<<(v&63)) != 0 }

// Add puts v in the set.
func (s *VLANSet) Add(v uint16) { s[v>>6&63] |= 1 << (v & 63) }

// Len is the number of VLANs in the set.
func (s *VLANSet) Len() int {
	n := 0
	for v := uint16(1); v <= MaxVLAN; v++ {
		if s.Has(v) {
			n++
		}
	}
	return n
}

// ParseVLANs parses "all" or a list like "100+200+300-310". The list is
// joined with "+", not ",", because commas separate a port spec's options.
func ParseVLANs(s string) (VLANSet, error) {
	if s == "all" {
		return AllVLANs(), nil
	}
	var set VLANSet
	for part := range strings.SplitSeq(s, "+") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := ParseVLAN(lo)
		if err != nil {
			return set, err
		}
		b := a
		if isRange {
			if b, err = ParseVLAN(hi); err != nil {
				return set, err
			}
			if b < a {
				return set, fmt.Errorf("VLAN range %q runs backwards", part)
			}
		}
		for v := a; v <= b; v++ {
			set.Add(v)
		}
	}
	return set, nil
}

// ParseVLAN parses one VLAN ID, 1..4094.
func ParseVLAN(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n < 1 || n > MaxVLAN {
		return 0, fmt.Errorf("VLAN %q: want an ID from 1 to %d", s, MaxVLAN)
	}
	return uint16(n), nil
}

// String lists the set as ParseVLANs reads it, ranges collapsed.
func (s VLANSet) String() string {
	var b strings.Builder
	n := 0
	for v := uint16(1); v <= MaxVLAN; v++ {
		if !s.Has(v) {
			continue
		}
		end := v
		for end < MaxVLAN && s.Has(end+1) {
			end++
		}
		if v == 1 && end == MaxVLAN {
			return "all"
		}
		if n > 0 {
			b.WriteByte('+')
		}
		n++
		b.WriteString(strconv.Itoa(int(v)))
		if end > v {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(end)))
		}
		v = end
	}
	return b.String()
}

// MarshalText writes the set as String does, for JSON.
func (s VLANSet) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *VLANSet) UnmarshalText(b []byte) error {
	v, err := ParseVLANs(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
