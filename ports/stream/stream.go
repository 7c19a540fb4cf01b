// Package stream implements ports that carry Ethernet frames over a byte
// stream, TCP or unix, to QEMU instances: QEMU's -netdev stream backend and
// the legacy -netdev socket,listen= and socket,connect= ones.
//
// # Wiring
//
// Either side may listen. When zswitch listens, every QEMU that connects
// becomes a port of its own (Listen, Listener.Accept):
//
//	zswitch: stream.Listen("unix", "/tmp/zsw.sock", opt)
//	QEMU:    -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/zsw.sock,reconnect-ms=1000
//
//	zswitch: stream.Listen("tcp", "127.0.0.1:5555", opt)
//	QEMU:    -netdev socket,id=n0,connect=127.0.0.1:5555
//
// When QEMU listens, zswitch connects to it and keeps connecting, so the
// QEMU can be restarted under a running switch (Dial):
//
//	zswitch: stream.Dial("tcp", "127.0.0.1:5555", opt)
//	QEMU:    -netdev stream,id=n0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5555
//	         -netdev socket,id=n0,listen=127.0.0.1:5555
//
// # Framing
//
// A frame goes out as its length, 4 bytes big-endian, then the frame: a
// 60-byte frame is 00 00 00 3c and its 60 bytes. QEMU never sends an empty
// frame or one longer than NET_BUFSIZE (69632 bytes), and closes the
// connection when it receives one. So does a port: a length of 0 or above
// 69632 leaves no way to find the next frame, so it is counted as
// bad_framing and the connection is closed. A frame that is valid but
// longer than the frame slot (or Options.MaxFrame) is skipped and counted
// as oversize; the connection stays.
//
// # Peers that stop reading
//
// A write waits at most Options.WriteTimeout for the peer to take data.
// Then the frames not written are dropped and counted as queue_full, and
// the connection stays: a guest stopped in a debugger resumes with its
// network intact. A frame cut in two by the timeout is finished before
// anything else is sent, so the peer never loses the framing.
//
// # Counters
//
// As for every port, the engine counts frames and bytes; a port counts only
// the drops it sees and, when it dials, its connection events (Connects,
// Disconnects, failed dials in Errors, LinkUp). For accepted connections the
// engine counts Connects and Disconnects.
package stream

import (
	"log/slog"
	"time"
)

// DefaultMaxFrame is QEMU's largest frame (NET_BUFSIZE, 4096 + 65536). A
// length above it is bad framing, whatever Options.MaxFrame says.
const DefaultMaxFrame = 4096 + 65536

// DefaultBatchSize is the most frames one ReadFrames call fills by default.
const DefaultBatchSize = 64

// DefaultWriteTimeout is how long a write waits for a peer that takes no data.
const DefaultWriteTimeout = time.Second

// Default redial delays of Dial: the first retry waits BackoffMin, each
// further one twice as long, up to BackoffMax.
const (
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
)

// maxBatch caps Options.BatchSize.
const maxBatch = 1024

// rxBufSize is the receive buffer of each port: one read takes up to this
// much, a few thousand small frames, so most ReadFrames calls are served
// without a system call.
const rxBufSize = 256 << 10

// writeBatch is the most frames one writev carries: two iovecs each
// (header and frame), and Linux takes 1024 iovecs per call (UIO_MAXIOV).
const writeBatch = 512

// Options tune a port. The zero value is ready to use.
type Options struct {
	// MaxFrame is the longest frame sent or received; longer ones are
	// dropped as oversize. Default and maximum DefaultMaxFrame. Received
	// frames are also limited by the frame slot.
	MaxFrame int
	// WriteTimeout is how long a write waits for the peer to take data
	// before the frames in hand are dropped. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
	// BatchSize is the most frames one ReadFrames call fills. Default
	// DefaultBatchSize, at most 1024.
	BatchSize int
	// BackoffMin and BackoffMax bound the wait before Dial connects again
	// after a failed attempt or a dropped connection. The wait doubles
	// from BackoffMin after each failure and is reset by a connection.
	// Defaults DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
}

func (o Options) withDefaults() Options {
	if o.MaxFrame <= 0 || o.MaxFrame > DefaultMaxFrame {
		o.MaxFrame = DefaultMaxFrame
	}
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
