// Package frame holds the datapath's unit of work: frames in fixed-size pooled
// slots, and the pool that owns the slots. It imports nothing from zswitch.
package frame

import "sync/atomic"

// DefaultSlotSize holds any untagged or 802.1Q-tagged Ethernet frame with a
// 1500-byte MTU, rounded up to a power of two.
const DefaultSlotSize = 2048

// MaxSlotSize is the largest jumbo frame zswitch accepts (9000-byte MTU, tagged).
const MaxSlotSize = 9216

// A Frame is one frame in a pooled slot.
//
// Whoever holds a *Frame owns one reference to it: pass it on and stop
// touching it, or Release it. Never both. A frame sent to several ports takes
// one reference per port with Retain, so a flood costs no copies. While more
// than one reference exists the frame is read-only.
type Frame struct {
	buf  []byte // the slot, allocated once by the Pool
	n    int    // frame length
	refs atomic.Int32
	pool *Pool

	// In is the index of the ingress port, set by the engine.
	In uint16
	// VLAN is the 802.1Q VLAN the engine classified the frame into at
	// ingress (1..4094). Tagged says the frame's bytes carry that VLAN's
	// tag (TPID 0x8100 at offset 12); egress ports add or strip it.
	VLAN   uint16
	Tagged bool
}

// Bytes returns the frame. It is valid until the last Release.
func (f *Frame) Bytes() []byte { return f.buf[:f.n] }

// Space returns the whole slot, for a port to read a frame into.
func (f *Frame) Space() []byte { return f.buf }

// Cap is the largest frame the slot holds.
func (f *Frame) Cap() int { return len(f.buf) }

// Len is the frame length.
func (f *Frame) Len() int { return f.n }

// SetLen sets the frame length after a port wrote the frame into Space.
// It panics if n is out of the slot's range: a port bug, not bad input.
func (f *Frame) SetLen(n int) {
	if n < 0 || n > len(f.buf) {
		panic("frame: SetLen out of range")
	}
	f.n = n
}

// Retain adds k references, one per extra holder.
func (f *Frame) Retain(k int32) { f.refs.Add(k) }

// Release drops one reference and reports whether it was the last one. The
// caller that sees true must hand the frame back with Pool.Put (batched) or
// Free (one at a time); the frame must not be touched after that.
func (f *Frame) Release() (last bool) {
	r := f.refs.Add(-1)
	if r < 0 {
		panic("frame: released more often than retained")
	}
	return r == 0
}

// Free releases one reference and returns the slot to its pool if it was the
// last. Hot paths batch with Release and Pool.Put instead.
func (f *Frame) Free() {
	if f.Release() {
		f.pool.putOne(f)
	}
}

// Pool returns the pool that owns the frame.
func (f *Frame) Pool() *Pool { return f.pool }

// Shared reports whether more than one holder has a reference, so the
// frame must be copied, not changed in place.
func (f *Frame) Shared() bool { return f.refs.Load() > 1 }

// CopyTo copies the frame's bytes and metadata (In, VLAN, Tagged) into
// dst, a frame the caller holds alone, so the copy can change without
// touching f. It reports false, copying nothing, if dst's slot is too small.
func (f *Frame) CopyTo(dst *Frame) bool {
	if len(dst.buf) < f.n {
		return false
	}
	dst.n = copy(dst.buf, f.buf[:f.n])
	dst.In, dst.VLAN, dst.Tagged = f.In, f.VLAN, f.Tagged
	return true
}
