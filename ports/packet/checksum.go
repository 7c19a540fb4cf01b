package packet

import "encoding/binary"

// completeChecksum fills in the TCP or UDP checksum of an Ethernet frame
// whose sender left it to hardware (checksum offload). A host stack on a
// veth or a bridge hands such frames to a packet socket with only the
// pseudo-header sum in the checksum field; forwarded as they are, every
// receiver would drop them, which breaks TCP and UDP but not ping. This
// does what the NIC would have done: sum the layer-4 segment, field
// included, and store the complement. It reports whether it recognised the
// frame (IPv4 or IPv6, optionally VLAN-tagged, carrying TCP or UDP).
func completeChecksum(b []byte) bool {
	if len(b) < 14 {
		return false
	}
	off := 12
	etype := binary.BigEndian.Uint16(b[off:])
	for (etype == 0x8100 || etype == 0x88a8) && len(b) >= off+6 {
		off += 4
		etype = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	var proto byte
	var l4 []byte
	switch etype {
	case 0x0800:
		if len(b) < off+20 {
			return false
		}
		ihl := int(b[off]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[off+2:]))
		if ihl < 20 || total < ihl || len(b) < off+total {
			return false
		}
		proto, l4 = b[off+9], b[off+ihl:off+total]
	case 0x86dd:
		if len(b) < off+40 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(b[off+4:]))
		if len(b) < off+40+plen {
			return false
		}
		// Extension headers are left alone: offloaded TCP and UDP from
		// Linux come without them.
		proto, l4 = b[off+6], b[off+40:off+40+plen]
	default:
		return false
	}
	var field int
	switch proto {
	case 6:
		field = 16
	case 17:
		field = 6
	default:
		return false
	}
	if len(l4) < field+2 {
		return false
	}
	sum := ^onesSum(l4)
	if sum == 0 && proto == 17 {
		sum = 0xffff // UDP's "no checksum" is 0
	}
	binary.BigEndian.PutUint16(l4[field:], sum)
	return true
}

// onesSum is the 16-bit one's complement sum of b (RFC 1071).
func onesSum(b []byte) uint16 {
	var s uint64
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
