package packet

import (
	"encoding/binary"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// A zephyr stands in for a native_sim instance: it holds a TAP it created
// itself with TUNSETIFF (IFF_TAP|IFF_NO_PI, not persistent, so closing it
// deletes the interface) and answers ARP requests for its address.
type zephyr struct {
	f   *os.File
	mac [6]byte
	ip  netip.Addr
	wg  sync.WaitGroup
}

func (n *testNet) startZephyr(t *testing.T, ifname string, mac [6]byte, ip netip.Addr) *zephyr {
	t.Helper()
	var fd int
	var err error
	n.do(t, func() {
		// The TAP is created in the namespace /dev/net/tun was opened in.
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(ifname); err != nil {
			return
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	})
	if err != nil {
		if fd > 0 {
			unix.Close(fd)
		}
		t.Fatalf("create TAP %s: %v", ifname, err)
	}
	z := &zephyr{f: os.NewFile(uintptr(fd), "tap:"+ifname), mac: mac, ip: ip}
	n.up(t, ifname) // as net-setup.sh does
	z.wg.Go(z.serve)
	t.Cleanup(z.stop)
	return z
}

// stop closes the TAP, which deletes it, and waits for the responder.
func (z *zephyr) stop() {
	z.f.Close()
	z.wg.Wait()
}

// serve answers ARP requests for z.ip until the TAP is closed.
func (z *zephyr) serve() {
	buf := make([]byte, 2048)
	for {
		n, err := z.f.Read(buf)
		if err != nil {
			return
		}
		if reply := z.arpReply(buf[:n]); reply != nil {
			z.f.Write(reply)
		}
	}
}

// arpReply returns the reply to an ARP request for z.ip, or nil.
func (z *zephyr) arpReply(req []byte) []byte {
	if len(req) < 42 || binary.BigEndian.Uint16(req[12:]) != 0x0806 {
		return nil
	}
	a := req[14:]
	if binary.BigEndian.Uint16(a[6:]) != 1 || [4]byte(a[24:28]) != z.ip.As4() {
		return nil
	}
	return arp(2, z.mac, z.ip, [6]byte(a[8:14]), netip.AddrFrom4([4]byte(a[14:18])))
}

// arp builds an ARP packet (op 1 request, 2 reply) from sha/spa to
// tha/tpa, broadcast for a request.
func arp(op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	dst := tha
	if op == 1 {
		dst, tha = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, [6]byte{}
	}
	b := append(dst[:], sha[:]...)
	b = binary.BigEndian.AppendUint16(b, 0x0806)
	b = append(b, 0, 1, 0x08, 0, 6, 4)
	b = binary.BigEndian.AppendUint16(b, op)
	b = append(b, sha[:]...)
	b = append(b, spa.AsSlice()...)
	b = append(b, tha[:]...)
	b = append(b, tpa.AsSlice()...)
	return append(b, make([]byte, 60-len(b))...) // padded as a NIC would
}

// TestTAP attaches to a TAP held by another "process", as zswitch does to
// native_sim's zeth: an ARP request written to the port is answered. Then
// the TAP's owner restarts, which deletes and re-creates the interface,
// and the same port carries the next exchange without being reopened.
func TestTAP(t *testing.T) {
	n := newNet(t)
	zmac := [6]byte{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}
	zip, hostIP := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
	hostMAC := [6]byte{0x02, 0, 0, 0, 0, 0x02}
	z := n.startZephyr(t, "zeth", zmac, zip)

	c := n.openUp(t, "zeth", Options{PollInterval: 50 * time.Millisecond})
	r := startReader(t, c)
	ask := arp(1, hostMAC, hostIP, [6]byte{}, zip)
	want := arp(2, zmac, zip, hostMAC, hostIP)
	exchange := func() {
		t.Helper()
		if got := write(t, c, ask); got != 1 {
			t.Fatalf("WriteFrames wrote %d of 1", got)
		}
		r.expect(t, want)
	}
	exchange()

	// native_sim exits: its TAP goes away with it.
	z.stop()
	waitFor(t, "link down", func() bool { return !c.LinkUp.Load() })
	if got := write(t, c, ask); got != 0 {
		t.Fatalf("WriteFrames with the TAP gone wrote %d", got)
	}
	// ... and starts again.
	n.startZephyr(t, "zeth", zmac, zip)
	waitFor(t, "link up again", func() bool { return c.LinkUp.Load() })
	exchange()

	if cn, dc := c.Connects.Load(), c.Disconnects.Load(); cn != 2 || dc != 1 {
		t.Errorf("connects %d, disconnects %d; want 2 and 1", cn, dc)
	}
	if d := c.EgressDrops[ports.DropLinkDown].Load(); d != 1 {
		t.Errorf("link_down drops %d, want 1", d)
	}
	if c.DownTime() <= 0 {
		t.Error("DownTime is 0 after an outage")
	}
}
