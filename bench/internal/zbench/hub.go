package zbench

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The QEMU multicast "hub": what -netdev socket,mcast=230.0.0.1:1234,
// localaddr=127.0.0.1 does. No process at all: the kernel delivers every
// datagram to every member of the group, the sender too.
var hubGroup = [4]byte{230, 0, 0, 1}

const hubPort = 1234

// mcastMember opens a socket bound to the group's port that joined it on
// lo, the receiving half of a member; rcvbuf 0 keeps the default.
func mcastMember(rcvbuf int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("mcast %s: %w", what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if rcvbuf > 0 {
		setBuffers(fd, rcvbuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: hubPort, Addr: hubGroup}); err != nil {
		return fail("bind", err)
	}
	lo := [4]byte{127, 0, 0, 1}
	if err := unix.SetsockoptIPMreq(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreq{Multiaddr: hubGroup, Interface: lo}); err != nil {
		return fail("IP_ADD_MEMBERSHIP", err)
	}
	return fd, nil
}

// mcastEndpoint is a member that receives on one socket and sends on
// another, connected to the group (so plain sends and sendmmsg reach it);
// multicast loop on, so every member, the sender too, gets every frame.
func mcastEndpoint(i int) (*endpoint, error) {
	rfd, err := mcastMember(4 << 20)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(rfd)
		return nil, err
	}
	fail := func(what string, err error) (*endpoint, error) {
		unix.Close(rfd)
		unix.Close(wfd)
		return nil, fmt.Errorf("mcast %s: %w", what, err)
	}
	if err := unix.SetsockoptInet4Addr(wfd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, [4]byte{127, 0, 0, 1}); err != nil {
		return fail("IP_MULTICAST_IF", err)
	}
	unix.SetsockoptInt(wfd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1)
	setBuffers(wfd, 4<<20)
	if err := unix.Connect(wfd, &unix.SockaddrInet4{Port: hubPort, Addr: hubGroup}); err != nil {
		return fail("connect", err)
	}
	return dgramEndpoint(epName(i), macOf(i), rfd, wfd)
}

// startMcastHub runs the members inside the harness's namespace (lo up,
// multicast on), never in the root one.
func startMcastHub(string) (*peer, error) {
	name, h, cleanup, err := newNS()
	if err != nil {
		return nil, err
	}
	if err := ip("-n", name, "link", "set", "lo", "up", "multicast", "on"); err != nil {
		cleanup()
		return nil, err
	}
	p := &peer{Version: "kernel UDP multicast on lo (what QEMU -netdev socket,mcast= uses)", stop: cleanup,
		Note: "a hub: every frame goes to every member, the sender and idle members included; one datagram per frame " +
			"(the generator batches with sendmmsg/recvmmsg, QEMU would not); the kernel drops when a member's receive buffer " +
			"(4 MiB for endpoints, the default for idle members) is full",
		cant: map[string]string{WLearn: "a hub has no MAC table: nothing to fill"}}
	p.attach = func(i int) (ep *endpoint, err error) {
		err = inNS(h, func() error { ep, err = mcastEndpoint(i); return err })
		return ep, err
	}
	p.attachIdle = func(int) (io.Closer, error) {
		var fd int
		err := inNS(h, func() (err error) { fd, err = mcastMember(0); return err })
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), "mcast-idle"), nil
	}
	return p, nil
}
