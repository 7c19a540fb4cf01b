package engine

import (
	"encoding/binary"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// tpid8021Q is the TPID of a customer VLAN tag. 802.1ad service tags
// (0x88a8) are payload to this bridge, as to any 802.1Q C-VLAN bridge.
const tpid8021Q = 0x8100

// classify returns the VLAN a frame entering a port with policy pol
// belongs to, and whether its bytes carry a tag; ok is false when the port
// does not take the frame. Priority-tagged frames (VID 0) join the PVID
// like untagged ones but count as tagged, so egress rewrites or strips
// their tag instead of stacking a second one.
func classify(b []byte, pol *policy) (vlan uint16, tagged, ok bool) {
	if len(b) >= 18 && binary.BigEndian.Uint16(b[12:]) == tpid8021Q {
		if vid := binary.BigEndian.Uint16(b[14:]) & 0xfff; vid != 0 {
			return vid, true, pol.member.Has(vid)
		}
		return pol.pvid, true, pol.pvid != 0
	}
	return pol.pvid, false, pol.pvid != 0
}

// needsRetag reports whether f must change to leave a port with policy
// pol: tag added, removed, or its VID rewritten.
func needsRetag(f *frame.Frame, pol *policy) bool {
	if pol.untagged.Has(f.VLAN) {
		return f.Tagged
	}
	if !f.Tagged {
		return true
	}
	return binary.BigEndian.Uint16(f.Bytes()[14:])&0xfff != f.VLAN
}

// retag returns f as the port sends it: f itself changed in place when
// this egress holds the only reference, else a private copy (from the
// pool) with f's reference handed to rel. A nil frame means drop it, for
// the reason given.
func (e *Engine) retag(f *frame.Frame, pol *policy, rel *releaser) (*frame.Frame, ports.DropReason) {
	if !pol.member.Has(f.VLAN) {
		rel.release1(f)
		return nil, ports.DropVLAN
	}
	untag := pol.untagged.Has(f.VLAN)
	n := f.Len()
	newLen := n
	switch {
	case untag:
		newLen = n - 4
	case !f.Tagged:
		newLen = n + 4
	}
	if newLen > f.Cap() {
		rel.release1(f)
		return nil, ports.DropOversize
	}
	dst := f
	if f.Shared() {
		var one [1]*frame.Frame
		if e.pool.Get(one[:]) == 0 {
			rel.release1(f)
			return nil, ports.DropNoBuffer
		}
		dst = one[0]
		dst.In, dst.VLAN = f.In, f.VLAN
	}
	src, out := f.Bytes(), dst.Space()
	switch {
	case untag: // 12 bytes of MACs, then everything after the 4-byte tag
		copy(out[12:], src[16:n])
		copy(out[:12], src[:12])
	case !f.Tagged: // open a gap after the MACs for the tag
		copy(out[16:], src[12:n])
		copy(out[:12], src[:12])
		binary.BigEndian.PutUint16(out[12:], tpid8021Q)
		binary.BigEndian.PutUint16(out[14:], f.VLAN)
	default: // priority tag: keep PCP and DEI, set the VID
		if dst != f {
			copy(out, src)
		}
		tci := binary.BigEndian.Uint16(src[14:])
		binary.BigEndian.PutUint16(out[14:], tci&0xf000|f.VLAN)
	}
	dst.SetLen(newLen)
	dst.Tagged = !untag
	if dst != f {
		rel.release1(f)
	}
	return dst, 0
}
