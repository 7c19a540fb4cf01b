// Package slip implements ports that carry Ethernet frames in SLIP (RFC
// 1055) over a byte stream, as Zephyr's SLIP driver sends them with
// CONFIG_SLIP_TAP=y (the default): QEMU's second serial port, a pty, or a
// real serial line to a board. It replaces socat and tunslip6.
//
// # Wiring
//
// Zephyr's build runs QEMU with -serial unix:/tmp/slip.sock, and QEMU
// connects as a client, so zswitch listens; every connection becomes a
// port of its own (Listen, Listener.Accept), and a restarted QEMU simply
// connects again:
//
//	zswitch: slip.Listen("unix", "/tmp/slip.sock", opt)
//	QEMU:    -serial unix:/tmp/slip.sock
//
// When QEMU listens, zswitch connects to it and keeps connecting (Dial):
//
//	zswitch: slip.Dial("unix", "/tmp/qemu-slip.sock", opt)
//	QEMU:    -serial unix:/tmp/qemu-slip.sock,server=on,wait=off
//	         -serial tcp:127.0.0.1:4444,server=on,wait=off
//
// For tools that want a serial device, zswitch makes a pty and publishes
// its slave at a stable path (OpenPTY); for a board, it opens the serial
// device itself (OpenTTY):
//
//	zswitch: slip.OpenPTY("/tmp/slip.dev", opt)
//	QEMU:    -serial /tmp/slip.dev
//
//	zswitch: slip.OpenTTY("/dev/ttyUSB0", 115200, opt)
//
// # Framing
//
// Every frame goes out as END (0xC0), the frame with 0xC0 replaced by DB DC
// and 0xDB by DB DD, then END, exactly as Zephyr sends it: no length, no
// checksum, no FCS. On input, END always ends a packet; empty packets (END
// END) are keepalives and are ignored. A packet with an invalid escape (DB
// followed by anything but DC or DD) is discarded up to the next END and
// counted as bad_framing; one longer than Options.MaxFrame or the frame
// slot is discarded up to the next END and counted as oversize. Unlike
// tunslip6, no packet is ever taken for a debug or control message: a
// frame of printable bytes is a frame.
//
// # IP mode
//
// With Options.Mode = ModeIP the SLIP packets are raw IPv4/IPv6 packets
// (Linux's slip driver, Zephyr with CONFIG_SLIP_TAP=n, tunslip6 without
// -T). The port then stands on the segment for the device with one MAC
// (Options.MAC, or DeriveMAC of its name): it learns the device's
// addresses from the sources of its packets (plus Options.Addrs), answers
// ARP requests and IPv6 neighbour solicitations for them, learns the
// segment's neighbours from the frames it is sent, and resolves a
// packet's destination with ARP or NS itself (up to 16 packets wait for
// 3 s; then they are dropped as filtered, and beyond 16 as queue_full).
// Multicast and broadcast destinations map to group MACs. Frames to the
// port's MAC or a group that hold IPv4 or IPv6 go into SLIP without their
// Ethernet header and padding; everything else is dropped as filtered.
// There is no router: a destination off the device's subnet is resolved
// like any other, so it is reached only through a proxy-ARP router.
//
// # Peers that stop reading
//
// A write waits at most Options.WriteTimeout for the peer to take data.
// Then the frames not written are dropped and counted as queue_full, and
// the link stays. A frame cut in two by the timeout is finished before
// anything else is sent, so the peer never receives half a frame.
//
// # Counters
//
// As for every port, the engine counts frames and bytes; a port counts the
// drops it sees and, for Dial, OpenPTY and OpenTTY, its link events
// (Connects, Disconnects, failed connection attempts in Errors, LinkUp).
// For accepted connections the engine counts Connects and Disconnects.
package slip

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// SLIP's special bytes (RFC 1055).
const (
	End    = 0xC0 // ends (and, as Zephyr sends it, starts) a packet
	Esc    = 0xDB // escapes the next byte
	EscEnd = 0xDC // Esc EscEnd stands for a 0xC0 in the packet
	EscEsc = 0xDD // Esc EscEsc stands for a 0xDB in the packet
)

// DefaultMaxFrame is the longest frame Zephyr's SLIP Ethernet device sends
// or takes: MTU 1500, a 14-byte header and an 802.1Q tag, no FCS.
const DefaultMaxFrame = 1518

// DefaultBatchSize is the most frames one ReadFrames call fills by default.
const DefaultBatchSize = 64

// DefaultWriteTimeout is how long a write waits for a peer that takes no data.
const DefaultWriteTimeout = time.Second

// Default delays before Dial and OpenTTY connect again: the first retry
// waits BackoffMin, each further one twice as long, up to BackoffMax.
const (
	DefaultBackoffMin = 50 * time.Millisecond
	DefaultBackoffMax = 2 * time.Second
)

// maxBatch caps Options.BatchSize.
const maxBatch = 1024

// rxBufSize is the receive buffer of each port: one read takes up to this
// much, about 40 full-size frames.
const rxBufSize = 64 << 10

// txBufSize is the transmit buffer of each port: a batch is encoded into it
// and written with one system call. 64 full-size frames fit even if every
// byte needs escaping.
const txBufSize = 256 << 10

// ptyPoll is how often a pty whose peer closed it checks whether a peer
// opened it again.
const ptyPoll = 100 * time.Millisecond

// Options tune a port. The zero value is ready to use.
type Options struct {
	// MaxFrame is the longest frame sent or received; longer ones are
	// dropped as oversize. Default DefaultMaxFrame, at most
	// frame.MaxSlotSize. Received frames are also limited by the frame
	// slot.
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
	// BackoffMin and BackoffMax bound the wait before Dial or OpenTTY
	// tries again after a failed attempt or a lost connection. The wait
	// doubles from BackoffMin after each failure and is reset by a
	// connection. Defaults DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration

	// Mode is what the SLIP packets carry: Ethernet frames (ModeEthernet,
	// the default) or raw IPv4/IPv6 packets (ModeIP). In ModeIP, MaxFrame
	// still bounds the Ethernet frames on the switch side, so the longest
	// IP packet is MaxFrame-14. See ipmode.go.
	Mode Mode
	// MAC is the Ethernet address a ModeIP port uses on the switch
	// segment. Default: DeriveMAC of the port's name (for a Listener, of
	// "<listener name>#<connection number>").
	MAC net.HardwareAddr
	// Addrs are device addresses a ModeIP port answers ARP and neighbour
	// solicitations for before the device has sent from them. Addresses
	// the device sends from are learned anyway.
	Addrs []netip.Addr
}

func (o Options) withDefaults() Options {
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	o.MaxFrame = min(o.MaxFrame, frame.MaxSlotSize)
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
