package zbench

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"time"
)

// Frame layout written by the generator (all multi-byte fields big-endian):
//
//	0   dst MAC
//	6   src MAC
//	12  EtherType 0x88b5 (local experimental: no host stack takes it)
//	14  magic "zbn1"
//	18  flow id (uint16): one per flow and run, so stale frames of an earlier run are ignored
//	20  kind (uint16): data, announce, ping, pong
//	22  sequence number (uint64)
//	30  send timestamp (int64 ns since the harness's epoch, monotonic)
//	38  fill: every byte = byte(seq), checked on receipt
const (
	offFlow   = 18
	offKind   = 20
	offSeq    = 22
	offTS     = 30
	hdrLen    = 38
	etherType = 0x88b5
	magic     = 0x7a626e31 // "zbn1"
	maxFrame  = 1 << 16

	kindData     = 0
	kindAnnounce = 1
	kindPing     = 2
	kindPong     = 3
)

// epoch is what timestamps count from; time.Since uses the monotonic clock.
var epoch = time.Now()

func nowNS() int64 { return int64(time.Since(epoch)) }

// macOf is endpoint i's locally administered unicast MAC.
func macOf(i int) [6]byte { return [6]byte{0x02, 0x7a, 0x62, 0, byte(i >> 8), byte(i)} }

// learnMAC is the i-th source MAC of the table-filling workload: locally
// administered, unicast, disjoint from the endpoints' (second byte 0x5a).
func learnMAC(i uint64) [6]byte {
	return [6]byte{0x02, 0x5a, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

var broadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// fillTemplates[v] is a maxFill-byte run of byte v: the expected fill of a
// frame whose seq&255 == v, compared with one bytes.Equal.
const maxFill = 1514 - hdrLen

var fillTemplates = func() (t [256][]byte) {
	for v := range t {
		t[v] = bytes.Repeat([]byte{byte(v)}, maxFill)
	}
	return t
}()

// writeFrameHeader fills the fixed part of a frame.
func writeFrameHeader(f []byte, src, dst [6]byte, flow, kind uint16) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], etherType)
	binary.BigEndian.PutUint32(f[14:], magic)
	binary.BigEndian.PutUint16(f[offFlow:], flow)
	binary.BigEndian.PutUint16(f[offKind:], kind)
}

// putLen writes a stream transport's length prefix.
func putLen(b []byte, framing, l int) {
	switch framing {
	case 4:
		binary.BigEndian.PutUint32(b, uint32(l))
	case 2:
		binary.BigEndian.PutUint16(b, uint16(l))
	}
}

// parse checks a frame is ours and returns flow, kind and seq.
func parse(f []byte) (flow, kind uint16, seq uint64, ok bool) {
	if len(f) < hdrLen || binary.BigEndian.Uint16(f[12:]) != etherType || binary.BigEndian.Uint32(f[14:]) != magic {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint16(f[offFlow:]), binary.BigEndian.Uint16(f[offKind:]), binary.BigEndian.Uint64(f[offSeq:]), true
}

// epName names endpoint i in errors and logs.
func epName(i int) string { return "ep" + strconv.Itoa(i) }
