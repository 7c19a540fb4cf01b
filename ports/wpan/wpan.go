// Package wpan implements ports that carry IEEE 802.15.4 frames over the
// UART pipe of Zephyr's upipe driver (CONFIG_IEEE802154_UPIPE) to QEMU
// instances. Frames are PSDUs: the MAC frame without FCS, 1 to 127 bytes.
// They belong on an 802.15.4 medium (package medium), never on an Ethernet
// switch.
//
// # Framing
//
// Both directions carry 0xF0, LEN (one byte, the PSDU length, 1 to 127),
// then the PSDU: no escaping, no FCS. See Decoder for what a port does with
// bytes that fit no frame. Zephyr's receiver does not resynchronise, so a
// port writes whole frames only: a frame is sent complete or not at all.
//
// # Wiring
//
// A FIFO pair, as Zephyr's "make server/client/node" targets run QEMU
// (-serial pipe:PATH). QEMU reads PATH.in and writes PATH.out; the port
// reads PATH.out and writes PATH.in, and creates the FIFOs if missing:
//
//	zswitch: wpan.OpenPipe("/tmp/hub/ip-stack-node1", opt)
//	QEMU:    -serial none -serial pipe:/tmp/hub/ip-stack-node1
//
// A unix stream socket, as the "run" target wires QEMU (-serial
// unix:PATH, QEMU the client). Every connection is a port (Listen); or
// zswitch connects to a QEMU that listens (-serial unix:PATH,server=on,wait=off)
// and keeps connecting (Dial):
//
//	zswitch: wpan.Listen("unix", "/tmp/slip.sock", opt)
//	QEMU:    -serial unix:/tmp/slip.sock
//
// A pseudo-terminal, for anything that opens a tty (QEMU -serial
// /dev/pts/N through the link, a host tool): OpenPTY makes the pair and a
// symlink to the slave.
//
// # Peers that stop reading
//
// A write waits at most Options.WriteTimeout for the peer to take data;
// then the frames not written are dropped as queue_full. A frame cut in
// two (possible on sockets and ptys, never on FIFOs: writes of up to 4096
// bytes to a FIFO are atomic) is finished before anything else is sent.
//
// # Counters
//
// As for every port, the engine (or the medium) counts frames and bytes; a
// port counts the drops it sees (bad_framing once per garbage run,
// oversize, runt, queue_full, link_down) and its connection events.
package wpan

import (
	"log/slog"
	"time"
)

// DefaultBatchSize is the most frames one ReadFrames call fills by default.
const DefaultBatchSize = 64

// DefaultWriteTimeout is how long a write waits for a peer that takes no data.
const DefaultWriteTimeout = 200 * time.Millisecond

// Default redial delays of Dial.
const (
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
)

// maxBatch caps Options.BatchSize.
const maxBatch = 1024

// rxBufSize is what one read takes at most: hundreds of frames.
const rxBufSize = 64 << 10

// pipeBuf is the largest write a FIFO takes atomically (PIPE_BUF): every
// write is at most this long, so a FIFO peer never sees a frame in part.
const pipeBuf = 4096

// ptyPoll is how often a pty port looks for a peer after the last one
// closed the slave.
const ptyPoll = 100 * time.Millisecond

// Options tune a port. The zero value is ready to use.
type Options struct {
	// WriteTimeout is how long a write waits for the peer to take data
	// before the frames in hand are dropped. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
	// BatchSize is the most frames one ReadFrames call fills. Default
	// DefaultBatchSize, at most 1024.
	BatchSize int
	// BackoffMin and BackoffMax bound the wait before Dial connects again.
	// Defaults DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
}

func (o Options) withDefaults() Options {
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, maxBatch)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = DefaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	o.BackoffMax = max(o.BackoffMax, o.BackoffMin)
	return o
}
