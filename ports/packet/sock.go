package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"golang.org/x/sys/unix"
)

// A sock is one AF_PACKET socket bound to one incarnation of the interface.
// Its fields do not change; the watcher replaces the whole sock.
type sock struct {
	f       *os.File // non-blocking, on the netpoller
	rc      syscall.RawConn
	r       *mmsg.Reader // used by the reading goroutine only
	w       *mmsg.Writer // used by the writing goroutine only
	ifindex int
}

// auxSpace is the control buffer a message needs for its PACKET_AUXDATA.
var auxSpace = unix.CmsgSpace(sizeofAux)

const sizeofAux = int(unsafe.Sizeof(unix.TpacketAuxdata{}))

// openSock opens a raw socket in ns and binds it to ifindex. Every option is
// set before bind, so no frame arrives without its auxdata.
func openSock(ns netns.NsHandle, ifname string, ifindex, batch int) (*sock, error) {
	var fd int
	err := inNetns(ns, func() (err error) {
		// Protocol 0: nothing is queued before bind.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return os.NewSyscallError("socket", err)
	})
	if err != nil {
		return nil, err
	}
	fail := func(op string, err error) (*sock, error) {
		unix.Close(fd)
		return nil, os.NewSyscallError(op, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("setsockopt PACKET_AUXDATA", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fail("setsockopt PACKET_IGNORE_OUTGOING (Linux 4.20 or later)", err)
	}
	mmsg.SetBuffers(fd, sockBuf)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	// Membership, not IFF_PROMISC: the kernel drops it with the socket.
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		return fail("setsockopt PACKET_ADD_MEMBERSHIP", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := mmsg.NewReader(rc, batch, false)
	r.EnableControl(auxSpace)
	return &sock{f: f, rc: rc, r: r, w: mmsg.NewWriter(rc, batch, nil), ifindex: ifindex}, nil
}

func (s *sock) close() { s.f.Close() }

// boundIndex is the ifindex the socket is bound to now: -1 once the kernel
// unregistered the device under it.
func (s *sock) boundIndex() int {
	idx := -1
	s.rc.Control(func(fd uintptr) {
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			if ll, ok := sa.(*unix.SockaddrLinklayer); ok {
				idx = ll.Ifindex
			}
		}
	})
	return idx
}

// ifState is what the port needs to know about its interface.
type ifState struct {
	index, mtu int
	flags      uint16
}

// running reports whether frames can flow: admin up, with carrier (a TAP
// has carrier while a process holds it, a veth while its peer is up).
func (st ifState) running() bool {
	return st.flags&unix.IFF_UP != 0 && st.flags&unix.IFF_RUNNING != 0
}

// lookup asks the kernel about the interface named name in ctl's namespace.
func lookup(ctl int, name string) (ifState, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return ifState{}, err
	}
	var st ifState
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return ifState{}, fmt.Errorf("%w: %s", errNoInterface, name)
		}
		return ifState{}, os.NewSyscallError("ioctl SIOCGIFINDEX", err)
	}
	st.index = int(ifr.Uint32())
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFFLAGS, ifr); err != nil {
		return ifState{}, os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	st.flags = ifr.Uint16()
	if err := unix.IoctlIfreq(ctl, unix.SIOCGIFMTU, ifr); err != nil {
		return ifState{}, os.NewSyscallError("ioctl SIOCGIFMTU", err)
	}
	st.mtu = int(ifr.Uint32())
	return st, nil
}

// newCtl opens the socket interface ioctls go through. A socket answers
// them for its own namespace, whichever thread asks.
func newCtl(ns netns.NsHandle) (int, error) {
	fd := -1
	err := inNetns(ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return os.NewSyscallError("socket", err)
	})
	return fd, err
}

// currentNetns returns the network namespace of the calling thread.
func currentNetns() (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ns, err := netns.Get()
	if err != nil {
		return ns, fmt.Errorf("get network namespace: %w", err)
	}
	return ns, nil
}

// inNetns runs fn on a locked thread in ns, and brings the thread back.
// If it cannot come back the thread stays locked, so the runtime ends it
// with the goroutine instead of reusing it in the wrong namespace.
func inNetns(ns netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get network namespace: %w", err)
	}
	defer orig.Close()
	if orig.Equal(ns) {
		defer runtime.UnlockOSThread()
		return fn()
	}
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Offsets in struct tpacket_auxdata.
var (
	auxStatus = int(unsafe.Offsetof(unix.TpacketAuxdata{}.Status))
	auxTCI    = int(unsafe.Offsetof(unix.TpacketAuxdata{}.Vlan_tci))
	auxTPID   = int(unsafe.Offsetof(unix.TpacketAuxdata{}.Vlan_tpid))
)

// auxTag finds PACKET_AUXDATA in a message's control data and returns the
// VLAN tag the kernel took out of the frame, TPID and TCI as they go on the
// wire, if there was one. It does not allocate.
func auxTag(oob []byte) (tag uint32, ok bool) {
	tag, ok, _ = auxData(oob)
	return tag, ok
}

// auxData is auxTag that also reports whether the frame's layer-4 checksum
// was left for hardware to fill in (TP_STATUS_CSUMNOTREADY): the sender is
// a host stack with checksum offload, on a veth say.
func auxData(oob []byte) (tag uint32, ok, csumNotReady bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0, false, false
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= sizeofAux {
			status := binary.NativeEndian.Uint32(data[auxStatus:])
			csumNotReady = status&unix.TP_STATUS_CSUMNOTREADY != 0
			if status&unix.TP_STATUS_VLAN_VALID == 0 {
				return 0, false, csumNotReady
			}
			tpid := uint16(unix.ETH_P_8021Q)
			if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				if p := binary.NativeEndian.Uint16(data[auxTPID:]); p != 0 {
					tpid = p
				}
			}
			return uint32(tpid)<<16 | uint32(binary.NativeEndian.Uint16(data[auxTCI:])), true, csumNotReady
		}
		oob = rest
	}
	return 0, false, false
}

// htons converts a protocol number to network byte order, as sockaddr_ll
// wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// watch checks the interface every poll interval, and at once when the
// datapath asks, until Close. It alone replaces c.cur and moves LinkUp.
func (c *Conn) watch() {
	t := time.NewTicker(c.poll)
	defer t.Stop()
	var errLog time.Time
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.kick:
		}
		if err := c.check(); err != nil {
			c.Errors.Add(1)
			if now := time.Now(); now.Sub(errLog) > logEvery {
				errLog = now
				c.log.Warn("re-attach failed; retrying", "port", c.name, "err", err)
			}
		}
		if s := c.cur.Load(); s != nil {
			c.countKernelDrops(s)
		}
	}
}

// countKernelDrops adds the frames the kernel dropped because the socket's
// receive buffer was full (PACKET_STATISTICS, which resets on reading) to
// the port's no_buffer drops: they entered the interface and never reached
// zswitch, and a switch that hid them would lie about what it delivered.
func (c *Conn) countKernelDrops(s *sock) {
	var drops uint32
	s.rc.Control(func(fd uintptr) {
		if st, err := unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			drops = st.Drops
		}
	})
	if drops > 0 {
		c.DropIn(ports.DropNoBuffer, uint64(drops))
		if now := time.Now(); now.Sub(c.kernelDropLog) > logEvery {
			c.kernelDropLog = now
			c.log.Warn("the kernel dropped frames: zswitch did not read the socket fast enough", "port", c.name, "frames", drops)
		}
	}
}

// check compares the interface with the socket the port holds: it
// detaches from a vanished interface, binds a new socket to a new one of
// the same name, and sets LinkUp. It returns an error only when attaching
// failed.
func (c *Conn) check() error {
	s := c.cur.Load()
	st, err := lookup(c.ctl, c.ifname)
	if err != nil {
		if s != nil {
			c.detach(s)
		}
		c.setLink(false, err)
		return nil
	}
	if s == nil || s.ifindex != st.index || s.boundIndex() != st.index {
		if s != nil {
			// Gone and back between two looks: still an outage.
			c.setLink(false, errRecreated)
		}
		ns, err := openSock(c.ns, c.ifname, st.index, c.batch)
		if err != nil {
			if s != nil {
				c.detach(s)
			}
			c.setLink(false, err)
			return err
		}
		c.cur.Store(ns)
		if s != nil {
			s.close() // wakes a reader still waiting on it
		}
		c.signal()
		c.log.Info("attached", "port", c.name, "ifindex", st.index, "mtu", st.mtu)
	}
	c.maxOut.Store(int64(st.mtu + overhead))
	if st.running() {
		c.setLink(true, nil)
	} else {
		c.setLink(false, errNotRunning)
	}
	return nil
}

var (
	errNotRunning = errors.New("interface is down or has no carrier")
	errRecreated  = errors.New("interface was deleted and created again")
)

// detach drops the socket bound to an interface that is gone.
func (c *Conn) detach(s *sock) {
	c.cur.Store(nil)
	s.close()
	c.signal()
}

// setLink records a change of the link state, counts it and logs it with
// how long the link was down.
func (c *Conn) setLink(up bool, why error) {
	if c.LinkUp.Load() == up {
		return
	}
	var down time.Duration
	c.mu.Lock()
	if up {
		if !c.downSince.IsZero() {
			down = time.Since(c.downSince)
			c.downTotal += down
			c.downSince = time.Time{}
		}
	} else {
		c.downSince = time.Now()
	}
	c.mu.Unlock()
	c.LinkUp.Store(up)
	if up {
		c.Connects.Add(1)
		c.log.Info("link up", "port", c.name, "down_for", down.Round(time.Millisecond))
	} else {
		c.Disconnects.Add(1)
		c.log.Warn("link down; dropping frames until it is back", "port", c.name, "reason", why)
	}
}

// requestCheck asks the watcher to look at the interface now.
func (c *Conn) requestCheck() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// signal tells a reader waiting for a socket that c.cur changed.
func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
