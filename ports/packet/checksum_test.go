package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// pseudoSum is the pseudo-header sum a stack with checksum offload leaves
// in the checksum field, computed independently of completeChecksum.
func pseudoSum(src, dst []byte, proto byte, l4len int) uint16 {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	add(src)
	add(dst)
	s += uint32(proto) + uint32(l4len)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// fullChecksum verifies a segment the slow, obvious way: pseudo-header
// plus segment must sum to 0xffff.
func verifies(src, dst []byte, proto byte, l4 []byte) bool {
	var s uint32
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			v := uint32(b[i]) << 8
			if i+1 < len(b) {
				v |= uint32(b[i+1])
			}
			s += v
		}
	}
	add(src)
	add(dst)
	s += uint32(proto) + uint32(len(l4))
	add(l4)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return s == 0xffff
}

func TestCompleteChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		v6    bool
		proto byte
		vlan  bool
	}{{false, 6, false}, {false, 17, false}, {true, 6, false}, {true, 17, true}, {false, 6, true}} {
		for _, n := range []int{0, 1, 7, 100, 1400} {
			payload := make([]byte, n)
			for i := range payload {
				payload[i] = byte(rng.Uint32())
			}
			hl := 8
			if tc.proto == 6 {
				hl = 20
			}
			l4 := append(make([]byte, hl), payload...)
			field := 6
			if tc.proto == 6 {
				field = 16
				l4[12] = 5 << 4
			} else {
				binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
			}
			var src, dst []byte
			f := make([]byte, 12)
			if tc.vlan {
				f = append(f, 0x81, 0x00, 0x00, 0x64)
			}
			if tc.v6 {
				src, dst = make([]byte, 16), make([]byte, 16)
				src[0], dst[0], src[15], dst[15] = 0xfd, 0xfd, 1, 2
				ip := make([]byte, 40)
				ip[0] = 0x60
				binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
				ip[6], ip[7] = tc.proto, 64
				copy(ip[8:], src)
				copy(ip[24:], dst)
				f = append(append(f, 0x86, 0xdd), ip...)
			} else {
				src, dst = []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
				ip := make([]byte, 20)
				ip[0] = 0x45
				binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
				ip[8], ip[9] = 64, tc.proto
				copy(ip[12:], src)
				copy(ip[16:], dst)
				f = append(append(f, 0x08, 0x00), ip...)
			}
			binary.BigEndian.PutUint16(l4[field:], pseudoSum(src, dst, tc.proto, len(l4)))
			start := len(f)
			f = append(f, l4...)
			if !completeChecksum(f) {
				t.Fatalf("%+v n=%d: not recognised", tc, n)
			}
			if !verifies(src, dst, tc.proto, f[start:]) {
				t.Fatalf("%+v n=%d: checksum does not verify", tc, n)
			}
		}
	}
	// Not TCP or UDP, or cut short: left alone.
	for _, f := range [][]byte{
		make([]byte, 14),
		append(make([]byte, 12), 0x08, 0x06, 0, 1),         // ARP
		append(append(make([]byte, 12), 0x08, 0x00), 0x45), // truncated IPv4
	} {
		if completeChecksum(f) {
			t.Fatalf("%x: recognised", f)
		}
	}
}

func FuzzCompleteChecksum(f *testing.F) {
	f.Add(append(append(make([]byte, 12), 0x08, 0x00), make([]byte, 60)...))
	f.Add(append(append(make([]byte, 12), 0x86, 0xdd), make([]byte, 80)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		completeChecksum(b) // must not panic on anything, runts included
	})
}
