package slip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// The lab of these tests: a host on the segment and the device behind an
// IP-mode port.
var (
	portMAC  = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	hostMAC  = net.HardwareAddr{0x02, 0xaa, 0x00, 0x00, 0x00, 0x01}
	otherMAC = net.HardwareAddr{0x02, 0xbb, 0x00, 0x00, 0x00, 0x03}
	bcast    = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	host4    = netip.MustParseAddr("10.9.0.1")
	dev4     = netip.MustParseAddr("10.9.0.2")
	host6    = netip.MustParseAddr("fd09::1")
	dev6     = netip.MustParseAddr("fd09::2")
)

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func a4(a netip.Addr) []byte  { b := a.As4(); return b[:] }
func a16(a netip.Addr) []byte { b := a.As16(); return b[:] }

func ethHdr(dst, src net.HardwareAddr, et uint16) []byte { return cat(dst, src, u16(et)) }

// ipv4Pkt is an IPv4 packet with a 20-byte header (checksum left 0: the
// port does not look at it).
func ipv4Pkt(src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	copy(h[12:], a4(src))
	copy(h[16:], a4(dst))
	return cat(h, payload)
}

func ipv6Pkt(src, dst netip.Addr, nh, hop byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0], h[6], h[7] = 0x60, nh, hop
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	copy(h[8:], a16(src))
	copy(h[24:], a16(dst))
	return cat(h, payload)
}

func arpPkt(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	return cat(u16(1), u16(0x0800), []byte{6, 4}, u16(op), sha, a4(spa), tha, a4(tpa))
}

// icmp6 marshals an ICMPv6 message with x/net/icmp, which computes the
// checksum over the pseudo-header itself: the independent oracle for the
// port's checksums.
func icmp6(t *testing.T, typ ipv6.ICMPType, src, dst netip.Addr, body []byte) []byte {
	t.Helper()
	m := icmp.Message{Type: typ, Body: &icmp.RawBody{Data: body}}
	b, err := m.Marshal(icmp.IPv6PseudoHeader(net.IP(a16(src)), net.IP(a16(dst))))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipPort is an accepted IP-mode port, the device's end of its SLIP link,
// and the frames the port hands the switch.
func ipPort(t *testing.T, opt Options) (*Port, *peer, <-chan []byte) {
	t.Helper()
	opt.Mode = ModeIP
	if opt.MAC == nil {
		opt.MAC = portMAC
	}
	p, q := listenPair(t, opt)
	return p, q, rxLoop(t, p)
}

// toPort writes frames to p as the switch does and returns how many went
// into SLIP.
func toPort(t *testing.T, p *Port, bs ...[]byte) int {
	t.Helper()
	fs := frames(t, len(bs), frame.DefaultSlotSize)
	for i, b := range bs {
		setFrame(fs[i], b)
	}
	n, err := p.WriteFrames(fs)
	if err != nil {
		t.Fatalf("WriteFrames: %v", err)
	}
	return n
}

// nothingFrom checks the device gets nothing (more) for a while.
func nothingFrom(t *testing.T, q *peer) {
	t.Helper()
	if b, err := q.Recv(150 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the device got % x (err %v), want nothing", b, err)
	}
}

// nothingOn checks the port hands the switch nothing (more) for a while.
func nothingOn(t *testing.T, rx <-chan []byte) {
	t.Helper()
	select {
	case b := <-rx:
		t.Fatalf("the port sent % x, want nothing", b)
	case <-time.After(150 * time.Millisecond):
	}
}

func next(t *testing.T, rx <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-rx:
		return b
	case <-time.After(5 * time.Second):
		t.Fatal("no frame in 5s")
		return nil
	}
}

func TestIPModeARPReply(t *testing.T) {
	p, q, rx := ipPort(t, Options{Addrs: []netip.Addr{dev4}})
	req := func(dst net.HardwareAddr, tpa netip.Addr) []byte {
		return cat(ethHdr(dst, hostMAC, 0x0806), arpPkt(1, hostMAC, host4, make(net.HardwareAddr, 6), tpa),
			make([]byte, 18)) // Ethernet padding to 60 bytes
	}
	n := toPort(t, p,
		req(bcast, netip.MustParseAddr("10.9.0.7")), // not the device's
		req(otherMAC, dev4),                         // unicast to someone else
		req(bcast, dev4))
	if n != 0 {
		t.Fatalf("%d ARP frames went into SLIP", n)
	}
	want := cat(ethHdr(hostMAC, portMAC, 0x0806), u16(1), u16(0x0800), []byte{6, 4}, u16(2),
		portMAC, a4(dev4), hostMAC, a4(host4))
	if got := next(t, rx); !bytes.Equal(got, want) {
		t.Fatalf("ARP reply\n got % x\nwant % x", got, want)
	}
	// Unicast to the port, as a host refreshing its cache does.
	toPort(t, p, req(portMAC, dev4))
	if got := next(t, rx); !bytes.Equal(got, want) {
		t.Fatalf("ARP reply to a unicast request\n got % x\nwant % x", got, want)
	}
	nothingOn(t, rx)
	nothingFrom(t, q)
	if got := p.EgressDrops[ports.DropFiltered].Load(); got != 4 {
		t.Errorf("filtered %d ARP frames, want 4", got)
	}
}

func TestIPModeLearnsDeviceAddress(t *testing.T) {
	p, q, rx := ipPort(t, Options{})
	toPort(t, p, cat(ethHdr(bcast, hostMAC, 0x0806), arpPkt(1, hostMAC, host4, make(net.HardwareAddr, 6), dev4)))
	nothingOn(t, rx) // not known yet
	// The device broadcasts: the port learns 10.9.0.2 and frames it.
	pkt := ipv4Pkt(dev4, netip.MustParseAddr("255.255.255.255"), []byte("hello"))
	q.send(t, pkt)
	if got, want := next(t, rx), cat(ethHdr(bcast, portMAC, 0x0800), pkt); !bytes.Equal(got, want) {
		t.Fatalf("broadcast\n got % x\nwant % x", got, want)
	}
	toPort(t, p, cat(ethHdr(bcast, hostMAC, 0x0806), arpPkt(1, hostMAC, host4, make(net.HardwareAddr, 6), dev4)))
	if got := next(t, rx); !bytes.Equal(got[:6], hostMAC) || binary.BigEndian.Uint16(got[20:]) != 2 {
		t.Fatalf("no ARP reply after learning: % x", got)
	}
}

func TestIPModeNeighbourAdvertisement(t *testing.T) {
	p, q, rx := ipPort(t, Options{})
	// The device speaks first, to all nodes: the port learns fd09::2.
	mc := ipv6Pkt(dev6, allNodes, 59, 1, nil)
	q.send(t, mc)
	if got, want := next(t, rx), cat(ethHdr(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, portMAC, 0x86dd), mc); !bytes.Equal(got, want) {
		t.Fatalf("multicast\n got % x\nwant % x", got, want)
	}

	snm := netip.MustParseAddr("ff02::1:ff00:2")
	snmMAC := net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 2}
	nsBody := cat(make([]byte, 4), a16(dev6), []byte{1, 1}, hostMAC) // reserved, target, SLLAO
	ns := ipv6Pkt(host6, snm, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborSolicitation, host6, snm, nsBody))
	if n := toPort(t, p, cat(ethHdr(snmMAC, hostMAC, 0x86dd), ns)); n != 0 {
		t.Fatal("an NS for the device went into SLIP")
	}
	got := next(t, rx)
	naBody := cat([]byte{0x60, 0, 0, 0}, a16(dev6), []byte{2, 1}, portMAC) // R=0 S=1 O=1, target, TLLAO
	want := cat(ethHdr(hostMAC, portMAC, 0x86dd),
		ipv6Pkt(dev6, host6, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborAdvertisement, dev6, host6, naBody)))
	if !bytes.Equal(got, want) {
		t.Fatalf("NA\n got % x\nwant % x", got, want)
	}

	// Duplicate address detection: from ::, answered to all nodes, not solicited.
	unspec := netip.IPv6Unspecified()
	dad := ipv6Pkt(unspec, snm, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborSolicitation, unspec, snm, cat(make([]byte, 4), a16(dev6))))
	toPort(t, p, cat(ethHdr(snmMAC, otherMAC, 0x86dd), dad))
	got = next(t, rx)
	naBody = cat([]byte{0x20, 0, 0, 0}, a16(dev6), []byte{2, 1}, portMAC)
	want = cat(ethHdr(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, portMAC, 0x86dd),
		ipv6Pkt(dev6, allNodes, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborAdvertisement, dev6, allNodes, naBody)))
	if !bytes.Equal(got, want) {
		t.Fatalf("NA to DAD\n got % x\nwant % x", got, want)
	}

	// A bad checksum, and an NS for someone else: no answer; the latter
	// (multicast) goes to the device like any IPv6 multicast.
	bad := bytes.Clone(ns)
	bad[len(bad)-1] ^= 1
	other := netip.MustParseAddr("fd09::7")
	ns7 := ipv6Pkt(host6, snm, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborSolicitation, host6, snm, cat(make([]byte, 4), a16(other))))
	if n := toPort(t, p, cat(ethHdr(snmMAC, hostMAC, 0x86dd), bad), cat(ethHdr(snmMAC, hostMAC, 0x86dd), ns7)); n != 2 {
		t.Fatalf("%d of 2 went into SLIP", n)
	}
	q.recv(t, time.Second)
	q.recv(t, time.Second)
	nothingOn(t, rx)
}

func TestIPModeHeaders(t *testing.T) {
	p, q, rx := ipPort(t, Options{})
	// Switch to SLIP: the header goes, and so does Ethernet padding.
	in := ipv4Pkt(host4, dev4, []byte("ping"))
	if n := toPort(t, p, cat(ethHdr(portMAC, hostMAC, 0x0800), in, make([]byte, 60-14-len(in)))); n != 1 {
		t.Fatalf("wrote %d", n)
	}
	if got := q.recv(t, time.Second); !bytes.Equal(got, in) {
		t.Fatalf("into SLIP\n got % x\nwant % x", got, in)
	}
	in6 := ipv6Pkt(host6, dev6, 59, 64, []byte{1, 2, 3})
	mc4 := ipv4Pkt(host4, netip.MustParseAddr("224.0.0.251"), nil)
	toPort(t, p,
		cat(ethHdr(otherMAC, hostMAC, 0x0800), in),     // unicast to another MAC
		cat(ethHdr(portMAC, hostMAC, 0x0800), in[:19]), // truncated
		cat(ethHdr(portMAC, hostMAC, 0x86dd), in),      // EtherType says IPv6
		cat(ethHdr(portMAC, hostMAC, 0x88cc), in),      // LLDP
		[]byte{1, 2, 3}, // runt
		cat(ethHdr(portMAC, hostMAC, 0x86dd), in6),
		cat(ethHdr(net.HardwareAddr{1, 0, 0x5e, 0, 0, 0xfb}, hostMAC, 0x0800), mc4))
	if got := q.recv(t, time.Second); !bytes.Equal(got, in6) {
		t.Fatalf("IPv6 into SLIP\n got % x\nwant % x", got, in6)
	}
	if got := q.recv(t, time.Second); !bytes.Equal(got, mc4) {
		t.Fatalf("multicast into SLIP\n got % x\nwant % x", got, mc4)
	}
	nothingFrom(t, q)
	if f, r := p.EgressDrops[ports.DropFiltered].Load(), p.EgressDrops[ports.DropRunt].Load(); f != 4 || r != 1 {
		t.Errorf("filtered %d, runt %d; want 4, 1", f, r)
	}

	// SLIP to switch: the host's MAC was learned from its frames.
	out := ipv4Pkt(dev4, host4, []byte("pong"))
	out6 := ipv6Pkt(dev6, host6, 59, 64, nil)
	q.send(t, out, out6)
	if got, want := next(t, rx), cat(ethHdr(hostMAC, portMAC, 0x0800), out); !bytes.Equal(got, want) {
		t.Fatalf("from SLIP\n got % x\nwant % x", got, want)
	}
	if got, want := next(t, rx), cat(ethHdr(hostMAC, portMAC, 0x86dd), out6); !bytes.Equal(got, want) {
		t.Fatalf("IPv6 from SLIP\n got % x\nwant % x", got, want)
	}
	for _, c := range []struct {
		dst string
		mac net.HardwareAddr
	}{
		{"255.255.255.255", bcast},
		{"239.129.2.3", net.HardwareAddr{1, 0, 0x5e, 1, 2, 3}}, // the top bit of the group is dropped
		{"ff02::fb", net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0xfb}},
		{"ff05::1:3", net.HardwareAddr{0x33, 0x33, 0, 1, 0, 3}},
	} {
		d := netip.MustParseAddr(c.dst)
		var pkt []byte
		et := uint16(0x0800)
		if d.Is4() {
			pkt = ipv4Pkt(dev4, d, nil)
		} else {
			pkt, et = ipv6Pkt(dev6, d, 59, 1, nil), 0x86dd
		}
		q.send(t, pkt)
		if got, want := next(t, rx), cat(ethHdr(c.mac, portMAC, et), pkt); !bytes.Equal(got, want) {
			t.Fatalf("to %s\n got % x\nwant % x", c.dst, got, want)
		}
	}
	// Not IP, and an IP header that claims more than it has.
	q.send(t, []byte{0x50, 1, 2, 3}, ipv4Pkt(dev4, host4, nil)[:18], ipv6Pkt(dev6, host6, 59, 1, []byte{1})[:40])
	waitFor(t, "bad_framing 3", func() bool { return p.IngressDrops[ports.DropBadFraming].Load() == 3 })
	nothingOn(t, rx)
}

func TestIPModeResolution(t *testing.T) {
	p, q, rx := ipPort(t, Options{})
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	p.ip.mu.Lock()
	p.ip.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p.ip.mu.Unlock()
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	// Three packets to a host not known yet: one ARP request, from the
	// device's address.
	var pkts [][]byte
	for i := range 3 {
		pkts = append(pkts, ipv4Pkt(dev4, host4, []byte{byte(i)}))
	}
	q.send(t, pkts...)
	wantReq := cat(ethHdr(bcast, portMAC, 0x0806), arpPkt(1, portMAC, dev4, make(net.HardwareAddr, 6), host4))
	if got := next(t, rx); !bytes.Equal(got, wantReq) {
		t.Fatalf("ARP request\n got % x\nwant % x", got, wantReq)
	}
	nothingOn(t, rx)
	// The reply releases them, in order.
	toPort(t, p, cat(ethHdr(portMAC, hostMAC, 0x0806), arpPkt(2, hostMAC, host4, portMAC, dev4)))
	for _, pkt := range pkts {
		if got, want := next(t, rx), cat(ethHdr(hostMAC, portMAC, 0x0800), pkt); !bytes.Equal(got, want) {
			t.Fatalf("released\n got % x\nwant % x", got, want)
		}
	}

	// IPv6: a neighbour solicitation to the solicited-node group.
	pkt6 := ipv6Pkt(dev6, host6, 59, 64, []byte{6})
	q.send(t, pkt6)
	snm := netip.MustParseAddr("ff02::1:ff00:1")
	wantNS := cat(ethHdr(net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, portMAC, 0x86dd),
		ipv6Pkt(dev6, snm, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborSolicitation, dev6, snm,
			cat(make([]byte, 4), a16(host6), []byte{1, 1}, portMAC))))
	if got := next(t, rx); !bytes.Equal(got, wantNS) {
		t.Fatalf("NS\n got % x\nwant % x", got, wantNS)
	}
	naBody := cat([]byte{0x60, 0, 0, 0}, a16(host6), []byte{2, 1}, hostMAC)
	na := ipv6Pkt(host6, dev6, 58, 255, icmp6(t, ipv6.ICMPTypeNeighborAdvertisement, host6, dev6, naBody))
	toPort(t, p, cat(ethHdr(portMAC, otherMAC, 0x86dd), na)) // TLLAO wins over the frame's source
	if got, want := next(t, rx), cat(ethHdr(hostMAC, portMAC, 0x86dd), pkt6); !bytes.Equal(got, want) {
		t.Fatalf("released IPv6\n got % x\nwant % x", got, want)
	}
	q.recv(t, time.Second) // the NA itself, addressed to the device

	// A host that never answers: 16 packets wait, the rest are dropped at
	// once (queue_full); one more request a second; after 3 s they go
	// (filtered).
	silent := netip.MustParseAddr("10.9.0.99")
	for i := range maxPending + 4 {
		q.send(t, ipv4Pkt(dev4, silent, []byte{byte(i)}))
	}
	waitFor(t, "queue_full", func() bool { return p.IngressDrops[ports.DropQueueFull].Load() == 4 })
	req := next(t, rx)
	if !bytes.Equal(req[38:42], a4(silent)) {
		t.Fatalf("not a request for %v: % x", silent, req)
	}
	nothingOn(t, rx)
	advance(1100 * time.Millisecond)
	toPort(t, p, cat(ethHdr(portMAC, hostMAC, 0x88cc))) // any traffic runs the timers
	if got := next(t, rx); !bytes.Equal(got, req) {
		t.Fatalf("retry\n got % x\nwant % x", got, req)
	}
	advance(2 * time.Second)
	toPort(t, p, cat(ethHdr(portMAC, hostMAC, 0x88cc)))
	if got := p.IngressDrops[ports.DropFiltered].Load(); got != maxPending {
		t.Fatalf("%d unresolved packets dropped, want %d", got, maxPending)
	}
	// Every device packet is accounted for: sent on, or dropped.
	if got := p.RxInvalid.Load(); got != 4+maxPending {
		t.Errorf("RxInvalid %d, want %d", got, 4+maxPending)
	}
}

func TestIPModeOptions(t *testing.T) {
	for _, o := range []Options{
		{MAC: portMAC},
		{Addrs: []netip.Addr{dev4}},
		{Mode: ModeIP, MAC: bcast},
		{Mode: ModeIP, MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		{Mode: ModeIP, MAC: net.HardwareAddr{2, 0, 0, 0, 0}},
		{Mode: ModeIP, Addrs: []netip.Addr{netip.MustParseAddr("224.0.0.1")}},
		{Mode: 7},
	} {
		if _, err := Dial("unix", "/nonexistent", o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	for s, m := range map[string]Mode{"": ModeEthernet, "eth": ModeEthernet, "ip": ModeIP} {
		if got, err := ParseMode(s); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseMode("tap"); err == nil {
		t.Error("ParseMode(tap) accepted")
	}
	a, b := DeriveMAC("slip unix:/tmp/a#1"), DeriveMAC("slip unix:/tmp/a#2")
	if !bytes.Equal(a, DeriveMAC("slip unix:/tmp/a#1")) || bytes.Equal(a, b) || a[0]&3 != 2 {
		t.Errorf("DeriveMAC: %v %v", a, b)
	}

	// Each connection of a listener has a MAC of its own, and the same
	// one in every run.
	l := listen(t, Options{Mode: ModeIP})
	var macs []net.HardwareAddr
	for range 2 {
		c, err := net.Dial("unix", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		macs = append(macs, p.(*Port).MAC())
	}
	if !bytes.Equal(macs[0], DeriveMAC(l.String()+"#1")) || !bytes.Equal(macs[1], DeriveMAC(l.String()+"#2")) {
		t.Errorf("listener MACs %v", macs)
	}
	if p, _ := listenPair(t, Options{}); p.MAC() != nil {
		t.Error("an Ethernet-mode port has a MAC")
	}
}
