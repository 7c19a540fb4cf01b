// Package ports defines what every port kind implements, and the counters
// every port carries. Packages under ports/ implement one kind each; they
// import this package and frame, never the engine.
package ports

import "github.com/zswitch/zswitch/frame"

// A Port moves frames between zswitch and one outside endpoint: a QEMU
// socket, a TAP, a SLIP line, an 802.15.4 pipe.
//
// ReadFrames is called from one goroutine and WriteFrames from another; a
// Port must allow that, and nothing more. (A TryWriter's writing methods may
// be called from several goroutines, but never two at a time.)
type Port interface {
	// ReadFrames fills up to len(fs) frames, whose slots the caller lends for
	// the call, and returns how many it filled. It blocks until at least one
	// frame arrives. Callers handle fs[:n] before looking at err.
	//
	// An error means the port is gone for good (a peer hung up on an accepted
	// connection, or Close was called; then it wraps net.ErrClosed). Ports
	// that survive their peer's restart (connect mode) keep trying and do not
	// return errors for that.
	ReadFrames(fs []*frame.Frame) (n int, err error)

	// WriteFrames writes fs in order and returns how many frames it handed to
	// the endpoint. It never blocks longer than the endpoint takes to accept
	// the data; a port whose peer is absent drops and counts (DropLinkDown).
	// It keeps no reference to fs or the frames after returning.
	WriteFrames(fs []*frame.Frame) (n int, err error)

	// BatchSize is the most frames one ReadFrames call fills. It never changes.
	BatchSize() int

	// Counters returns the port's counters. The engine adds rx/tx and its
	// own drops to them; the port adds the drops only it can see. A port
	// embeds Stats to implement it.
	Counters() *Stats

	// Close unblocks ReadFrames and WriteFrames. It is safe to call twice.
	Close() error
}

// A Listener accepts connections that each become a port of their own, like
// QEMU instances connecting to a stream socket.
type Listener interface {
	// Accept waits for the next connection. After Close it returns an error
	// wrapping net.ErrClosed.
	Accept() (Port, error)
	// Close stops accepting and removes what the listener created (a unix
	// socket file). Accepted ports stay open.
	Close() error
	// Addr is where peers connect, for logs and for the QEMU flags zswitch prints.
	Addr() string
}

// A TryWriter is a Port that can also write without waiting. The engine
// uses it to write from the goroutine that received a frame when the
// port's own writer is idle, which saves waking that writer's thread on
// every hop.
//
// TryWriteFrames, WriteFrames and Flush may be called from different
// goroutines, but never at the same time: the caller serialises them with
// a lock, and each call sees what the previous one left.
type TryWriter interface {
	Port

	// TryWriteFrames writes the longest prefix of fs the endpoint takes at
	// once, without waiting, and returns its length n; a port whose writes
	// are costly may stop earlier and leave the rest to its own writer (a
	// TAP writes at most a few frames). It keeps fs's order
	// and drops and counts nothing: whatever it cannot do now (the endpoint
	// is full or gone, a frame WriteFrames would drop, an error, the port
	// still finishing an earlier frame) it leaves, fs[n:], for WriteFrames.
	//
	// When the endpoint took only the start of fs[n-1], that frame counts
	// as written and cut is true: the port keeps its rest, which goes out
	// before anything else at the next WriteFrames or Flush, and the caller
	// must make sure that one of them comes soon. Until then TryWriteFrames
	// writes nothing. It keeps no reference to fs or the frames.
	TryWriteFrames(fs []*frame.Frame) (n int, cut bool)

	// Flush finishes a frame TryWriteFrames cut, waiting for the endpoint
	// as WriteFrames would; with nothing cut it returns at once. Its errors
	// are WriteFrames's.
	Flush() error
}
