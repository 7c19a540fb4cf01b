package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeZephyr plays a native_sim instance: it creates its TAP with
// TUNSETIFF (IFF_TAP|IFF_NO_PI; closing it deletes the interface), as
// eth_native_tap.c does, and answers ARP and ICMP echo for its address.
type fakeZephyr struct {
	f   *os.File
	mac [6]byte
	ip  [4]byte
	wg  sync.WaitGroup
}

func startFakeZephyr(t *testing.T, ns, ifname string, mac [6]byte, ip [4]byte) *fakeZephyr {
	t.Helper()
	z := &fakeZephyr{mac: mac, ip: ip}
	inNetns(t, ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0) // pollable, so Close ends Read
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(ifname)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", ifname, err)
		}
		z.f = os.NewFile(uintptr(fd), ifname)
		return nil
	})
	sh(t, "ip", "-n", ns, "link", "set", ifname, "up") // net-setup.sh's part
	z.wg.Go(z.serve)
	t.Cleanup(z.stop)
	return z
}

func (z *fakeZephyr) stop() {
	if z.f != nil {
		z.f.Close()
		z.wg.Wait()
		z.f = nil
	}
}

func (z *fakeZephyr) serve() {
	buf := make([]byte, 2048)
	for {
		n, err := z.f.Read(buf)
		if err != nil {
			return
		}
		if reply := z.answer(buf[:n]); reply != nil {
			z.f.Write(reply)
		}
	}
}

// answer builds the reply to an ARP request or ICMP echo request for z.ip.
func (z *fakeZephyr) answer(req []byte) []byte {
	if len(req) < 42 {
		return nil
	}
	switch binary.BigEndian.Uint16(req[12:]) {
	case 0x0806: // ARP
		a := req[14:]
		if binary.BigEndian.Uint16(a[6:]) != 1 || [4]byte(a[24:28]) != z.ip {
			return nil
		}
		r := make([]byte, 42)
		copy(r[0:6], req[6:12])
		copy(r[6:12], z.mac[:])
		binary.BigEndian.PutUint16(r[12:], 0x0806)
		ra := r[14:]
		copy(ra[0:6], a[0:6]) // htype, ptype, hlen, plen
		binary.BigEndian.PutUint16(ra[6:], 2)
		copy(ra[8:14], z.mac[:])
		copy(ra[14:18], z.ip[:])
		copy(ra[18:28], a[8:18]) // the asker's MAC and IP
		return r
	case 0x0800: // IPv4
		ip := req[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 1 || [4]byte(ip[16:20]) != z.ip || len(ip) < ihl+8 || ip[ihl] != 8 {
			return nil
		}
		r := append([]byte(nil), req...)
		copy(r[0:6], req[6:12])
		copy(r[6:12], z.mac[:])
		rip := r[14:]
		copy(rip[12:16], ip[16:20])
		copy(rip[16:20], ip[12:16])
		icmp := rip[ihl:]
		icmp[0] = 0 // echo reply
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
		return r
	}
	return nil
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// TestNativeSimLab: zswitch attaches with packet ports to a TAP that a
// native_sim-like process owns and to veths of two hosts. A host pings the
// "Zephyr"; the "Zephyr" exits and starts again (its TAP is deleted and
// created anew) and is reachable again without restarting zswitch. A
// VLAN-tagged frame from one host reaches the other with its tag.
func TestNativeSimLab(t *testing.T) {
	needRoot(t)
	sw := newNetns(t, "sw", false)
	h1, h2 := newNetns(t, "h1", false), newNetns(t, "h2", false)
	for i, h := range []string{h1, h2} {
		v := fmt.Sprintf("v%d", i+1)
		sh(t, "ip", "-n", sw, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", h)
		sh(t, "ip", "-n", sw, "link", "set", v, "up")
		sh(t, "ip", "-n", h, "addr", "add", fmt.Sprintf("10.81.0.%d/24", 10+i), "dev", "eth0")
		sh(t, "ip", "-n", h, "link", "set", "eth0", "up")
	}
	zmac, zip := [6]byte{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01}, [4]byte{10, 81, 0, 1}
	zeph := startFakeZephyr(t, sw, "zeth", zmac, zip)

	bin := buildZswitch(t)
	z := exec.Command("ip", "netns", "exec", sw, bin, "run", "--log-level", "debug",
		"--port", "packet:zeth,name=zephyr", "--port", "packet:v1,name=h1", "--port", "packet:v2,name=h2")
	zlog := startProcess(t, z)
	for start := time.Now(); !strings.Contains(zlog.String(), "zswitch running"); {
		if time.Since(start) > 10*time.Second {
			t.Fatal("zswitch did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	pingOK := func(from, addr string) bool {
		for range 3 {
			if exec.Command("ip", "netns", "exec", from, "ping", "-c1", "-W2", addr).Run() == nil {
				return true
			}
		}
		return false
	}
	if !pingOK(h1, "10.81.0.1") {
		t.Fatal("h1 cannot ping the native_sim stand-in")
	}

	t.Run("zephyr-restarts", func(t *testing.T) {
		zeph.stop() // zephyr.exe exits: its TAP disappears
		time.Sleep(500 * time.Millisecond)
		startFakeZephyr(t, sw, "zeth", zmac, zip)
		deadline := time.Now().Add(15 * time.Second)
		for !pingOK(h1, "10.81.0.1") {
			if time.Now().After(deadline) {
				t.Fatal("the restarted native_sim stand-in is unreachable")
			}
		}
		if !strings.Contains(zlog.String(), "down_for") {
			t.Error("zswitch did not log the downtime")
		}
	})

	t.Run("vlan-tag", func(t *testing.T) {
		// A raw socket in h2 reads with PACKET_AUXDATA, where the kernel
		// reports the tag it took off the frame.
		var rx, tx int
		inNetns(t, h2, func() (err error) {
			rx, err = rawSocket("eth0", true)
			return err
		})
		defer unix.Close(rx)
		inNetns(t, h1, func() (err error) {
			tx, err = rawSocket("eth0", false)
			return err
		})
		defer unix.Close(tx)
		f := make([]byte, 64)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x11, 0x81, 0x00, 0x20, 0x64, 0x88, 0xb5})
		copy(f[18:], "zswitch vlan test")
		if _, err := unix.Write(tx, f); err != nil {
			t.Fatal(err)
		}
		buf, oob := make([]byte, 2048), make([]byte, 256)
		unix.SetsockoptTimeval(rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
		for {
			n, oobn, _, _, err := unix.Recvmsg(rx, buf, oob, 0)
			if err != nil {
				t.Fatalf("h2 received no tagged frame: %v", err)
			}
			if n < 16 || string(buf[14:14+len("zswitch vlan test")]) != "zswitch vlan test" {
				continue // not ours
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA {
					aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
					if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 || aux.Vlan_tci != 0x2064 {
						t.Fatalf("tag lost: status %#x tci %#x", aux.Status, aux.Vlan_tci)
					}
					return
				}
			}
			t.Fatal("no auxdata")
		}
	})

	z.Process.Signal(syscall.SIGTERM)
	if err := z.Wait(); err != nil {
		t.Fatalf("zswitch exit: %v", err)
	}
}

// rawSocket opens an AF_PACKET socket bound to ifname in the calling
// thread's namespace.
func rawSocket(ifname string, aux bool) (int, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	ifi, err := net.InterfaceByName(ifname) // netlink, in this thread's namespace
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	if aux {
		unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
