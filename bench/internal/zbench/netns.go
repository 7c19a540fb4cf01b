package zbench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsPrefix names the harness's namespaces; stale ones (dead pid) are swept.
const nsPrefix = "zbench-"

func sweepStaleNS() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		netns.DeleteNamed(e.Name())
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// newNS creates the harness's namespace zbench-<pid>-<rand> (after
// sweeping stale ones) with IPv6 off, so no host stack chatter (router
// solicitations, MLD) reaches the endpoints; cleanup closes the handle
// and deletes it.
func newNS() (name string, h netns.NsHandle, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return "", 0, nil, fmt.Errorf("needs root")
	}
	sweepStaleNS()
	var rb [4]byte
	rand.Read(rb[:])
	name = fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(rb[:]))
	if err := ip("netns", "add", name); err != nil {
		return "", 0, nil, err
	}
	if h, err = netns.GetFromName(name); err != nil {
		ip("netns", "delete", name)
		return "", 0, nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	cleanup = func() { h.Close(); ip("netns", "delete", name) }
	if out, err := exec.Command("ip", "netns", "exec", name, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
		cleanup()
		return "", 0, nil, fmt.Errorf("sysctl in %s: %v: %s", name, err, out)
	}
	return name, h, cleanup, nil
}

// inNS runs fn on a thread switched into ns and back. Sockets and TAPs
// created by fn stay in ns after the switch back.
func inNS(ns netns.NsHandle, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if switching back fails: the thread dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			ch <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			ch <- err
			return
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}

// openTAP creates a TAP (IFF_TAP|IFF_NO_PI) inside the namespace and
// returns its fd as a pollable file. The TAP goes away with the fd.
func openTAP(ns netns.NsHandle, name string) (*os.File, error) {
	var f *os.File
	err := inNS(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		var ifr [unix.IFNAMSIZ + 64]byte
		copy(ifr[:], name)
		*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, e)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	return f, err
}

// setBuffers asks for big socket buffers (root may exceed rmem_max), so a
// burst waits in the kernel instead of being dropped by the generator's
// own socket.
func setBuffers(fd, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, size)
	}
}

// packetSocket opens an AF_PACKET socket in ns bound to interface ifname
// for the generator's EtherType, not seeing its own outgoing frames.
func packetSocket(ns netns.NsHandle, ifname string) (int, error) {
	fd := -1
	err := inNS(ns, func() error {
		ifi, err := netIfIndex(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(etherType))
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			unix.Close(s)
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
		setBuffers(s, 4<<20)
		if err := unix.Bind(s, &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: ifi}); err != nil {
			unix.Close(s)
			return fmt.Errorf("bind AF_PACKET to %s: %w", ifname, err)
		}
		fd = s
		return nil
	})
	return fd, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// netIfIndex looks an interface up in the calling thread's namespace.
func netIfIndex(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
