package ports

import "sync/atomic"

// A DropReason says why a frame was discarded. Every frame that enters the
// switch is delivered or counted under exactly one reason.
type DropReason uint8

const (
	DropQueueFull       DropReason = iota // the egress port's queue was full (a slow or stuck peer)
	DropOversize                          // larger than the buffer slot or the egress MTU
	DropRunt                              // shorter than an Ethernet header (14 bytes)
	DropBadFraming                        // the transport's framing was invalid (length 0 or over the limit)
	DropMulticastSource                   // the source MAC was a group address, which 802.1D forbids
	DropFiltered                          // the destination sits on the ingress port: nowhere to send
	DropLinkDown                          // the egress peer was not connected
	DropTxError                           // the endpoint refused the write
	DropNoBuffer                          // no free frame slot at ingress (the pool was exhausted)
	DropLinkLoss                          // lost on a simulated lossy link (802.15.4 link matrix, impairments)
	DropRateLimit                         // an impaired link's rate-limit queue was full
	DropVLAN                              // the frame's VLAN is not allowed on the port (ingress or egress)
	DropMACLimit                          // a new source MAC beyond the port's MAC limit
	DropMACViolation                      // the source MAC is bound (static or sticky) to another port
	DropIsolated                          // between two isolated ports
	DropStorm                             // broadcast/multicast over the port's storm-control rate
	DropMoveDamped                        // the source MAC flaps between ports and is held where it was
	NumDropReasons
)

var dropReasonNames = [NumDropReasons]string{
	"queue_full", "oversize", "runt", "bad_framing", "multicast_source",
	"filtered", "link_down", "tx_error", "no_buffer", "link_loss",
	"rate_limit", "vlan", "mac_limit", "mac_violation", "isolated", "storm",
	"move_damped",
}

// String returns the reason as it appears in metrics and the control API.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// Stats are one port's counters. Each is an atomic updated once per batch by
// the goroutine that owns it; readers (metrics, ctl) load them at any time.
//
// Invariants the tests hold:
//
//	RxFrames + RxInvalid + RxDuplicated = Forwarded + Σ IngressDrops
//	Enqueued + TxDuplicated             = TxFrames + Σ EgressDrops
//
// The Duplicated counters are the extra copies a link impairment made
// (duplicate=); they are 0 on an unimpaired port.
// RxFrames counts frames the engine received from ReadFrames. Input a port
// discards itself before it becomes a frame (bad framing, oversize on the
// wire) counts in RxInvalid and in IngressDrops under its reason: ports
// call DropIn, which does both.
type Stats struct {
	RxFrames  atomic.Uint64
	RxBytes   atomic.Uint64
	TxFrames  atomic.Uint64
	TxBytes   atomic.Uint64
	Forwarded atomic.Uint64 // received frames queued to at least one egress port
	Flooded   atomic.Uint64 // received frames sent to every other port (broadcast, multicast, unknown unicast)
	Enqueued  atomic.Uint64 // frame copies the engine tried to queue to this port (a full queue drops them)

	// IngressDrops and EgressDrops split Drops by where they happened, so
	// both identities above can be checked.
	IngressDrops [NumDropReasons]atomic.Uint64
	EgressDrops  [NumDropReasons]atomic.Uint64

	RxDuplicated atomic.Uint64 // extra copies made by the port's inbound impairment
	TxDuplicated atomic.Uint64 // extra copies made by the port's outbound impairment
	MACMoves     atomic.Uint64 // source MACs that moved to this port from another one

	RxInvalid    atomic.Uint64 // input discarded by the port before it became a frame
	LearnRefused atomic.Uint64 // source MACs not learned: table or port limit reached
	Connects     atomic.Uint64
	Disconnects  atomic.Uint64
	Errors       atomic.Uint64 // I/O errors other than drops (failed dials, resets)
	LinkUp       atomic.Bool   // the port keeps it: true while its peer is connected (or, connectionless, reachable)
}

// Counters lets any port embed Stats to implement Port.Counters.
func (s *Stats) Counters() *Stats { return s }

// DropIn counts n received frames that a port discarded itself, before
// handing them to the engine.
func (s *Stats) DropIn(r DropReason, n uint64) {
	s.RxInvalid.Add(n)
	s.IngressDrops[r].Add(n)
}

// DropOut counts n frame copies discarded on the way out.
func (s *Stats) DropOut(r DropReason, n uint64) { s.EgressDrops[r].Add(n) }

// Dropped is the total of a reason over both directions.
func (s *Stats) Dropped(r DropReason) uint64 {
	return s.IngressDrops[r].Load() + s.EgressDrops[r].Load()
}
