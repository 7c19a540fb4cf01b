// Package tap implements a port on a Linux TAP device: zswitch holds the
// device's file descriptor and is the wire behind the host's TAP
// interface. Frames the host sends out of the interface arrive at zswitch;
// frames zswitch writes are received by the host on the interface.
//
// # Create or attach
//
// Open attaches to a TAP of that name if one exists in the calling
// thread's network namespace (made with `ip tuntap add NAME mode tap`, or
// by another program) and never changes or removes it: not its
// persistence, owner, MTU (unless Options.MTU asks) or up/down state.
// Otherwise Open creates the TAP, brings it up, and Close removes it again
// unless Options.Persist is set. The host side then only needs addresses:
//
//	ip addr add 192.0.2.1/24 dev zsw0
//
// A TAP zswitch attaches to must be up for traffic (`ip link set NAME up`);
// until it is, frames towards it are dropped as link_down.
//
// A TAP carries one reader per queue. A single-queue TAP held by another
// program (Zephyr native_sim's zeth, a QEMU -netdev tap) cannot be
// attached: use an AF_PACKET port (packet:NAME) on it instead. The same
// goes for interfaces that are not TAPs (veth, bridge, NIC).
//
// # Frames
//
// The file descriptor carries plain Ethernet frames: no packet information
// header, no virtio-net header (so no offloads: the kernel segments and
// checksums before it hands a frame over), no FCS. A TAP read returns one
// frame; there is no batch system call for a character device, so a port
// moves one frame per read(2) or write(2). ReadFrames waits on the Go
// netpoller for the first frame and then takes what is already queued
// without waiting, up to the batch.
//
// Frames from the host are at most MTU+18 bytes (header and one VLAN tag).
// One longer than the frame slot (an MTU above the slot size) is dropped
// whole as oversize, never delivered cut short. A TAP read silently cuts a
// frame to the buffer, so the port reads into the slot plus one guard byte
// (readv): a frame that reaches the guard was longer than the slot. Frames
// to the host longer than MTU+18 are dropped as oversize before writing.
//
// # Namespaces and privileges
//
// Open works in the network namespace of the calling thread: to open a TAP
// in another one, lock the goroutine to its thread and enter the namespace
// first (github.com/vishvananda/netns); the file descriptor keeps working
// from any thread afterwards. Creating a TAP, and setting an MTU, need
// CAP_NET_ADMIN. Attaching needs read/write access to /dev/net/tun and, if
// the TAP has an owner or group (Options.Owner, or `ip tuntap add NAME mode
// tap user U`), to be that user or in that group, or CAP_NET_ADMIN.
//
// The ioctls are issued here rather than through netlink.Tuntap, which
// always sets the owner, group and persistence: attaching with it would
// reset a pre-created TAP's owner to root. Attaching does set the
// device-wide feature flags to this descriptor's (no packet information,
// no virtio-net header), as every TUNSETIFF does: do not attach to a
// multi-queue TAP whose other queues use a virtio-net header (a QEMU with
// vnet_hdr=on).
//
// # Link state
//
// Stats.LinkUp is the interface's state as the port last saw it: up if it
// was up at Open, down after a write failed because the interface is down
// (EIO), up again after a frame went through either way. The port does not
// watch netlink.
package tap

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// DefaultBatchSize is how many frames one ReadFrames call fills at most by
// default.
const DefaultBatchSize = 64

// maxBatch bounds Options.BatchSize.
const maxBatch = 1024

// ethHeader is the shortest frame: destination, source and EtherType.
const ethHeader = 14

// linkOverhead is what a frame may carry beyond the MTU: the Ethernet
// header and one 802.1Q tag.
const linkOverhead = ethHeader + 4

// tunDevice is the clone device every TAP is opened through.
const tunDevice = "/dev/net/tun"

// logEvery limits how often a repeating error is logged.
const logEvery = 10 * time.Second

// Options tune a port. The zero value is ready to use.
type Options struct {
	// Persist keeps a TAP that Open creates after Close. A TAP that
	// already existed is never removed, whatever Persist says.
	Persist bool
	// MTU, if positive, is set on the interface at Open (created or
	// attached). 0 leaves it as it is (1500 for a new TAP).
	MTU int
	// Owner and Group, if positive, are the user and group allowed to
	// attach to a TAP that Open creates without CAP_NET_ADMIN
	// (TUNSETOWNER, TUNSETGROUP), as `ip tuntap add ... user U group G`
	// does. 0 and -1 leave them unset. Only useful with Persist. They are
	// never applied to a TAP that already existed.
	Owner, Group int
	// Logger receives lifecycle messages and errors, never one per frame.
	// Default: discard.
	Logger *slog.Logger
	// BatchSize is the most frames one ReadFrames call fills. Default
	// DefaultBatchSize, at most 1024.
	BatchSize int
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	o.BatchSize = min(o.BatchSize, maxBatch)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// A Device is a TAP port. ReadFrames and WriteFrames may run at the same
// time on two goroutines; Close may be called from any.
type Device struct {
	ports.Stats

	name    string // the interface's name, as the kernel reports it
	label   string // "tap NAME", for errors and logs
	f       *os.File
	rc      syscall.RawConn
	created bool // Open created the TAP (else it attached to one)
	persist bool // a created TAP outlives Close
	mtu     int
	maxOut  int // longest frame written: MTU + linkOverhead
	batch   int
	log     *slog.Logger

	closed    atomic.Bool
	errClosed error // built once, so a closed port answers without allocating
	closeOnce sync.Once
	closeErr  error

	rd     reader                // owned by the reading goroutine
	readFn func(fd uintptr) bool // d.read, bound once

	// Owned by the writing goroutine.
	wr struct {
		b         []byte
		err       error
		lastErrAt time.Time
	}
	writeFn func(fd uintptr) bool // d.write, bound once

	// TryWriteFrames' state, shared with its RawConn callback.
	try struct {
		fs []*frame.Frame
		n  int
	}
	tryFn func(fd uintptr) bool // d.tryWrite, bound once
}

var _ ports.TryWriter = (*Device)(nil)

// A reader is ReadFrames' state, shared with its RawConn callback.
type reader struct {
	fs       []*frame.Frame
	n        int   // frames filled
	oversize int   // frames dropped as longer than their slot
	runts    int   // frames shorter than an Ethernet header
	err      error // the errno that ended the read, if any
	iov      [2]unix.Iovec
	guard    [1]byte // catches the byte after a full slot
}

// Open attaches to the TAP called name in the calling thread's network
// namespace, or creates it if there is none (see the package comment). A
// name containing "%d" is a template: the kernel picks a free number, and
// Name reports the result.
func Open(name string, opt Options) (*Device, error) {
	label := "tap " + name
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("%s: interface names are 1 to %d bytes", label, unix.IFNAMSIZ-1)
	}
	if opt.MTU < 0 || opt.MTU > 0 && (opt.MTU < 68 || opt.MTU > 65535) {
		return nil, fmt.Errorf("%s: MTU %d out of range 68..65535", label, opt.MTU)
	}
	opt = opt.withDefaults()

	// Creating with IFF_TUN_EXCL fails with EBUSY if the name was taken
	// since the lookup; then look again and attach.
	for range 2 {
		link, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		switch {
		case errors.As(err, &notFound):
			fd, err := openTAP(name, unix.IFF_TUN_EXCL)
			if errors.Is(err, unix.EBUSY) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: create: %w", label, explain(err))
			}
			return setup(fd, true, opt)
		case err != nil:
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		tt, ok := link.(*netlink.Tuntap)
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: %s is a %s interface, not a TAP: to attach zswitch to it, use packet:%s",
				label, name, link.Type(), name)
		case tt.Mode != netlink.TUNTAP_MODE_TAP:
			return nil, fmt.Errorf("%s: %s is a TUN device (layer 3, no Ethernet header): zswitch needs a TAP", label, name)
		}
		// The queue mode must match the device's; every other flag is
		// this fd's own choice.
		fd, err := openTAP(name, uint16(tt.Flags&netlink.TUNTAP_MULTI_QUEUE))
		if err != nil {
			if errors.Is(err, unix.EBUSY) {
				return nil, fmt.Errorf("%s: attach: %w: another program holds this single-queue TAP (a QEMU or native_sim?); attach to it with packet:%s instead",
					label, err, name)
			}
			return nil, fmt.Errorf("%s: attach: %w", label, explain(err))
		}
		if tt.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 && tt.Queues > 0 {
			opt.Logger.Warn("attaching to a multi-queue TAP that others hold queues of: the host spreads frames over all queues, so this port sees only its share of the flows",
				"port", label, "other_queues", tt.Queues)
		}
		return setup(fd, false, opt)
	}
	return nil, fmt.Errorf("%s: the interface keeps appearing and disappearing", label)
}

// openTAP opens /dev/net/tun and binds the descriptor to the TAP name with
// TUNSETIFF, creating it if it does not exist. The descriptor is blocking
// until setup: the kernel's poll on a tun descriptor works only after
// TUNSETIFF (golang/go#30426).
func openTAP(name string, flags uint16) (int, error) {
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open "+tunDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("TUNSETIFF", err)
	}
	return fd, nil
}

// explain adds what to do about the usual TUNSETIFF failures.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (needs CAP_NET_ADMIN, or a persistent TAP owned by this user: ip tuntap add NAME mode tap user $USER)", err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%w (is the tun module loaded? modprobe tun)", err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (no read/write access to %s)", err, tunDevice)
	}
	return err
}

// setup finishes Open on a descriptor bound to a TAP. It closes fd on
// error, which removes a TAP it created as long as it is not persistent
// yet: persistence is the last step.
func setup(fd int, created bool, opt Options) (*Device, error) {
	ifr, err := unix.NewIfreq("")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: TUNGETIFF: %w", err)
	}
	name := ifr.Name()
	label := "tap " + name
	fail := func(err error) (*Device, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if created {
		if opt.Owner > 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETOWNER, opt.Owner); err != nil {
				return fail(os.NewSyscallError("TUNSETOWNER", err))
			}
		}
		if opt.Group > 0 {
			if err := unix.IoctlSetInt(fd, unix.TUNSETGROUP, opt.Group); err != nil {
				return fail(os.NewSyscallError("TUNSETGROUP", err))
			}
		}
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fail(err)
	}
	if opt.MTU > 0 && link.Attrs().MTU != opt.MTU {
		if err := netlink.LinkSetMTU(link, opt.MTU); err != nil {
			return fail(fmt.Errorf("set MTU %d: %w", opt.MTU, err))
		}
	}
	if created {
		if err := netlink.LinkSetUp(link); err != nil {
			return fail(fmt.Errorf("set up: %w", err))
		}
	}
	if link, err = netlink.LinkByName(name); err != nil {
		return fail(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(os.NewSyscallError("set non-blocking", err))
	}
	if created && opt.Persist {
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fail(os.NewSyscallError("TUNSETPERSIST", err))
		}
	}
	f := os.NewFile(uintptr(fd), tunDevice) // non-blocking, so on the netpoller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close() // fd is f's now
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	mtu := link.Attrs().MTU
	d := &Device{
		name:      name,
		label:     label,
		f:         f,
		rc:        rc,
		created:   created,
		persist:   created && opt.Persist,
		mtu:       mtu,
		maxOut:    mtu + linkOverhead,
		batch:     opt.BatchSize,
		log:       opt.Logger,
		errClosed: fmt.Errorf("%s: %w", label, net.ErrClosed),
	}
	d.readFn = d.read
	d.writeFn = d.write
	d.tryFn = d.tryWrite
	up := link.Attrs().Flags&net.FlagUp != 0
	d.LinkUp.Store(up)
	d.log.Info("port open", "port", label, "created", created, "persist", d.persist, "mtu", mtu, "up", up)
	if !up {
		d.log.Warn("interface is down: frames towards it are dropped until `ip link set "+name+" up`", "port", label)
	}
	return d, nil
}

// Name is the interface's name.
func (d *Device) Name() string { return d.name }

// String describes the port for logs, e.g. "tap zsw0".
func (d *Device) String() string { return d.label }

// MTU is the interface's MTU as of Open (after Options.MTU was applied).
// Frames longer than MTU+18 are not written. The port does not notice a
// later change (it would have to ask netlink in the interface's namespace,
// which need not be the namespace of the thread that asks): reopen it.
func (d *Device) MTU() int { return d.mtu }

// Created reports whether Open created the TAP rather than attached to an
// existing one.
func (d *Device) Created() bool { return d.created }

// BatchSize is the most frames one ReadFrames call fills.
func (d *Device) BatchSize() int { return d.batch }

// ReadFrames waits for at least one frame and then reads, without waiting,
// what the kernel has queued, up to len(fs) and BatchSize frames: one
// read(2) per frame. Frames longer than their slot (DropOversize) or
// shorter than an Ethernet header (DropRunt) are counted and skipped. It
// may reorder fs: the frames it filled are fs[:n]. After Close, or once the
// interface is deleted, it returns an error, wrapping net.ErrClosed after
// Close.
func (d *Device) ReadFrames(fs []*frame.Frame) (int, error) {
	if len(fs) == 0 {
		return 0, nil
	}
	if d.closed.Load() {
		return 0, d.errClosed
	}
	r := &d.rd
	r.fs = fs[:min(len(fs), d.batch)]
	r.n, r.oversize, r.runts, r.err = 0, 0, 0, nil
	err := d.rc.Read(d.readFn)
	n := r.n
	r.fs = nil
	if r.oversize > 0 {
		d.DropIn(ports.DropOversize, uint64(r.oversize))
	}
	if r.runts > 0 {
		d.DropIn(ports.DropRunt, uint64(r.runts))
	}
	if n > 0 && !d.LinkUp.Load() {
		d.LinkUp.Store(true) // the host sent it: the interface is up
	}
	if err == nil {
		err = r.err
	}
	switch {
	case err == nil:
		return n, nil
	case d.closed.Load():
		return n, d.errClosed
	case errors.Is(err, unix.EBADFD):
		d.LinkUp.Store(false)
		return n, fmt.Errorf("%s: read: the interface was deleted: %w", d.label, err)
	}
	return n, fmt.Errorf("%s: read: %w", d.label, err)
}

// read is the RawConn callback of ReadFrames. It returns false, to wait on
// the netpoller, only while nothing was read.
func (d *Device) read(fd uintptr) bool {
	r := &d.rd
	for r.n < len(r.fs) {
		f := r.fs[r.n]
		b := f.Space()
		n, err := r.readv(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return r.n > 0
		case err != nil:
			r.err = err
			return true
		case n > len(b):
			// It reached the guard byte: longer than the slot, and the
			// kernel dropped the rest.
			r.oversize++
		case n < ethHeader:
			r.runts++
		default:
			f.SetLen(n)
			r.n++
		}
	}
	return true
}

// readv reads one frame into b and, past its end, the guard byte: a TAP
// read silently cuts a frame to the buffer, so only a frame that spills
// into the guard is known to be longer than b.
func (r *reader) readv(fd uintptr, b []byte) (int, error) {
	r.iov[0].Base, r.iov[1].Base = &b[0], &r.guard[0]
	r.iov[0].SetLen(len(b))
	r.iov[1].SetLen(len(r.guard))
	n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(len(r.iov)))
	r.iov[0].Base = nil // keep no reference to the slot
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// WriteFrames writes fs in order, one write(2) per frame. A TAP write does
// not wait: the host's stack takes the frame at once, or drops it and
// counts it on the interface (rx_dropped). Frames shorter than an Ethernet
// header (DropRunt) or longer than MTU+18 (DropOversize) are counted and
// not written; frames refused by the kernel count as DropTxError, and while
// the interface is down the rest of fs counts as DropLinkDown, without an
// error. It moves the frames it wrote to the front of fs, in order, so
// fs[:n] are exactly the frames written. After Close it writes nothing,
// counts fs as DropLinkDown and returns an error wrapping net.ErrClosed.
func (d *Device) WriteFrames(fs []*frame.Frame) (int, error) {
	if d.closed.Load() {
		d.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, d.errClosed
	}
	w := &d.wr
	sent := 0
	var runts, oversize, txErrs, down uint64
	var retErr error
	for i, f := range fs {
		switch l := f.Len(); {
		case l < ethHeader:
			runts++
			continue
		case l > d.maxOut:
			oversize++
			continue
		}
		w.b, w.err = f.Bytes(), nil
		err := d.rc.Write(d.writeFn)
		if err == nil {
			err = w.err
		}
		if err == nil {
			fs[sent], fs[i] = fs[i], fs[sent]
			sent++
			continue
		}
		rest := uint64(len(fs) - i) // this frame and the ones after it
		switch {
		case d.closed.Load():
			down += rest
			retErr = d.errClosed
		case errors.Is(err, unix.EIO):
			// The interface is down: so are the frames after this one.
			down += rest
			if d.LinkUp.Swap(false) {
				d.log.Info("interface down; dropping frames until it is up", "port", d.label)
			}
		case errors.Is(err, unix.EBADFD):
			down += rest
			d.LinkUp.Store(false)
			retErr = fmt.Errorf("%s: write: the interface was deleted: %w", d.label, err)
		default:
			txErrs++
			if now := time.Now(); now.Sub(w.lastErrAt) > logEvery {
				w.lastErrAt = now
				d.log.Warn("write failed", "port", d.label, "len", f.Len(), "err", err)
			}
			retErr = fmt.Errorf("%s: write: %w", d.label, err)
			continue
		}
		break
	}
	if sent > 0 && down == 0 && !d.LinkUp.Load() {
		d.LinkUp.Store(true)
		d.log.Info("interface up again", "port", d.label)
	}
	if runts > 0 {
		d.DropOut(ports.DropRunt, runts)
	}
	if oversize > 0 {
		d.DropOut(ports.DropOversize, oversize)
	}
	if txErrs > 0 {
		d.DropOut(ports.DropTxError, txErrs)
	}
	if down > 0 {
		d.DropOut(ports.DropLinkDown, down)
	}
	return sent, retErr
}

// write is the RawConn callback of WriteFrames.
func (d *Device) write(fd uintptr) bool {
	w := &d.wr
	for {
		_, err := unix.Write(int(fd), w.b)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // never seen on a TAP, whose send buffer is unlimited
		}
		w.err = err
		return true
	}
}

// tryMax is the most frames TryWriteFrames writes. Each costs a system
// call in which the kernel also delivers the frame; a reader that wrote
// a whole batch itself would stop reading for that long, while the port's
// own writer can write the rest on the other CPU. Small batches, where
// the saved hand-off matters most, go out whole.
const tryMax = 4

// TryWriteFrames writes a prefix of fs, at most tryMax frames, that the
// TAP takes now, one write each, for the engine's direct writes
// (ports.TryWriter). It drops and counts nothing: a runt, an oversize
// frame, an error or an interface that is down end it, and WriteFrames
// deals with the rest.
func (d *Device) TryWriteFrames(fs []*frame.Frame) (n int, cut bool) {
	if d.closed.Load() || !d.LinkUp.Load() {
		return 0, false
	}
	t := &d.try
	t.fs, t.n = fs[:min(len(fs), tryMax)], 0
	d.rc.Write(d.tryFn) // its error, the file's closing, leaves t.n at 0
	n = t.n
	t.fs = nil
	return n, false
}

// Flush returns nil: a TAP write is never cut.
func (d *Device) Flush() error { return nil }

// tryWrite is the RawConn callback of TryWriteFrames: all of its frames
// in one call, never waiting.
func (d *Device) tryWrite(fd uintptr) bool {
	t := &d.try
	for ; t.n < len(t.fs); t.n++ {
		b := t.fs[t.n].Bytes()
		if len(b) < ethHeader || len(b) > d.maxOut {
			break
		}
		_, err := unix.Write(int(fd), b)
		for err == unix.EINTR {
			_, err = unix.Write(int(fd), b)
		}
		if err != nil {
			break
		}
	}
	return true
}

// Close releases the TAP: a TAP that Open created without Persist
// disappears with it; one that existed before, or a persistent one, stays.
// It unblocks ReadFrames and is safe to call more than once.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if err := d.f.Close(); err != nil {
			d.closeErr = fmt.Errorf("%s: %w", d.label, err)
		}
		d.LinkUp.Store(false)
		d.log.Info("port closed", "port", d.label, "removed", d.created && !d.persist)
	})
	return d.closeErr
}
