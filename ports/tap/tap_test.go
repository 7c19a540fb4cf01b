package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/porttest"
)

func TestContract(t *testing.T) {
	requireTAP(t)
	porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
		ns := newNS(t)
		// An MTU above the 2048-byte slot, so the peer can send the
		// contract's oversize frame and the port can write slot-sized ones.
		d := ns.open(t, "zsw0", Options{MTU: 9000})
		return d, newPacketPeer(t, ns, "zsw0")
	})
}

func TestCreateRemovedOnClose(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	if !d.Created() || d.Name() != "zsw0" || d.String() != "tap zsw0" {
		t.Fatalf("Created %v, Name %q, String %q; want true, zsw0, \"tap zsw0\"", d.Created(), d.Name(), d.String())
	}
	l, err := ns.link("zsw0")
	if err != nil {
		t.Fatal(err)
	}
	tt, ok := l.(*netlink.Tuntap)
	if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || !tt.NonPersist {
		t.Fatalf("zsw0 is %T %+v; want a non-persistent TAP", l, l)
	}
	if l.Attrs().Flags&net.FlagUp == 0 || !d.LinkUp.Load() {
		t.Fatalf("a TAP zswitch creates must be up: flags %v, LinkUp %v", l.Attrs().Flags, d.LinkUp.Load())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if ns.exists(t, "zsw0") {
		t.Fatal("zsw0 still exists after Close")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestPersist(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{Persist: true, Owner: 1234, Group: 5678})
	d.Close()
	l, err := ns.link("zsw0")
	if err != nil {
		t.Fatalf("a persistent TAP is gone after Close: %v", err)
	}
	t.Cleanup(func() { ns.try(func() error { return netlink.LinkDel(l) }) })
	tt := l.(*netlink.Tuntap)
	if tt.NonPersist || tt.Owner != 1234 || tt.Group != 5678 {
		t.Fatalf("persist %v, owner %d, group %d; want true, 1234, 5678", !tt.NonPersist, tt.Owner, tt.Group)
	}

	// Reopening attaches to it, and leaves it there.
	d = ns.open(t, "zsw0", Options{})
	if d.Created() {
		t.Fatal("Open created a TAP that existed")
	}
	d.Close()
	if !ns.exists(t, "zsw0") {
		t.Fatal("attaching and closing removed a persistent TAP")
	}
	ns.do(t, func() error { return netlink.LinkDel(l) })
	if ns.exists(t, "zsw0") {
		t.Fatal("zsw0 still exists after LinkDel")
	}
}

// TestAttachExisting attaches to TAPs made by someone else, as
// `ip tuntap add` does, and checks that Close leaves them as they were.
func TestAttachExisting(t *testing.T) {
	ns := newNS(t)
	ns.do(t, func() error {
		// Persistent, single-queue, owned by a user, down, MTU 1280.
		tt := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "zeth"}, Mode: netlink.TUNTAP_MODE_TAP, Owner: 4321}
		if err := netlink.LinkAdd(tt); err != nil {
			return err
		}
		return netlink.LinkSetMTU(tt, 1280)
	})
	logs := &bytes.Buffer{}
	d := ns.open(t, "zeth", Options{Logger: testLogger(logs)})
	if d.Created() || d.MTU() != 1280 || d.LinkUp.Load() {
		t.Fatalf("Created %v, MTU %d, LinkUp %v; want false, 1280, false (attached, left down)", d.Created(), d.MTU(), d.LinkUp.Load())
	}
	if !strings.Contains(logs.String(), "ip link set zeth up") {
		t.Errorf("no hint to bring the interface up in the log:\n%s", logs)
	}
	d.Close()
	l, err := ns.link("zeth")
	if err != nil {
		t.Fatalf("Close removed a TAP it did not create: %v", err)
	}
	tt := l.(*netlink.Tuntap)
	if tt.NonPersist || tt.Owner != 4321 || l.Attrs().MTU != 1280 || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("after attach and Close: persist %v, owner %d, MTU %d, flags %v; want it unchanged (true, 4321, 1280, down)",
			!tt.NonPersist, tt.Owner, l.Attrs().MTU, l.Attrs().Flags)
	}

	// A multi-queue TAP another program holds a queue of: zswitch takes
	// another queue.
	var mq *netlink.Tuntap
	ns.do(t, func() error {
		mq = &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "zmq"}, Mode: netlink.TUNTAP_MODE_TAP,
			Queues: 1, Flags: netlink.TUNTAP_MULTI_QUEUE_DEFAULTS, NonPersist: true}
		return netlink.LinkAdd(mq)
	})
	t.Cleanup(func() {
		for _, f := range mq.Fds {
			f.Close()
		}
	})
	d = ns.open(t, "zmq", Options{})
	if d.Created() {
		t.Fatal("Open created a TAP that existed")
	}
	d.Close()
	if !ns.exists(t, "zmq") {
		t.Fatal("Close removed a multi-queue TAP it did not create")
	}

	// A single-queue TAP someone holds cannot be shared: the error says
	// what to use instead.
	var sq *netlink.Tuntap
	ns.do(t, func() error {
		sq = &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "zsq"}, Mode: netlink.TUNTAP_MODE_TAP,
			Queues: 1, Flags: netlink.TUNTAP_NO_PI, NonPersist: true}
		return netlink.LinkAdd(sq)
	})
	t.Cleanup(func() {
		for _, f := range sq.Fds {
			f.Close()
		}
	})
	err = ns.try(func() error {
		d, err := Open("zsq", Options{})
		if err == nil {
			d.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "packet:zsq") {
		t.Fatalf("Open on a busy single-queue TAP: %v; want an error suggesting packet:zsq", err)
	}
}

func TestNotATAP(t *testing.T) {
	ns := newNS(t)
	ns.do(t, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "zv0"}, PeerName: "zv1"}); err != nil {
			return err
		}
		return netlink.LinkAdd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "ztun"}, Mode: netlink.TUNTAP_MODE_TUN})
	})
	for name, want := range map[string]string{
		"zv0":              "zv0 is a veth interface, not a TAP: to attach zswitch to it, use packet:zv0",
		"ztun":             "ztun is a TUN device",
		"":                 "interface names are 1 to 15 bytes",
		"abcdefghijklmnop": "interface names are 1 to 15 bytes",
	} {
		err := ns.try(func() error {
			d, err := Open(name, Options{})
			if err == nil {
				d.Close()
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "tap "+name+": ") {
			t.Errorf("Open(%q): %v; want an error \"tap %s: ...%s...\"", name, err, name, want)
		}
	}
	if !ns.exists(t, "zv0") || !ns.exists(t, "ztun") {
		t.Fatal("a failed Open removed an interface")
	}
}

func TestMTU(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{MTU: 9000})
	l, err := ns.link("zsw0")
	if err != nil {
		t.Fatal(err)
	}
	if d.MTU() != 9000 || l.Attrs().MTU != 9000 {
		t.Fatalf("MTU() %d, interface MTU %d; want 9000", d.MTU(), l.Attrs().MTU)
	}
	d.Close()

	d = ns.open(t, "zsw1", Options{})
	if d.MTU() != 1500 {
		t.Fatalf("default MTU %d, want 1500", d.MTU())
	}
	err = ns.try(func() error {
		_, err := Open("zsw2", Options{MTU: 20})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("Open with MTU 20: %v; want an out-of-range error", err)
	}
	if ns.exists(t, "zsw2") {
		t.Fatal("a failed Open left its TAP behind")
	}
}

// TestOversizeOut writes the longest frame the MTU allows (MTU + header +
// one VLAN tag) and one byte more.
func TestOversizeOut(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{MTU: 1500})
	peer := newPacketPeer(t, ns, "zsw0")
	fs := frames(t, 3, frame.DefaultSlotSize)
	setFrame(fs[0], ethFrame(0, 1519))
	setFrame(fs[1], ethFrame(1, 1518))
	setFrame(fs[2], ethFrame(2, 13))
	n, err := d.WriteFrames(fs)
	if n != 1 || err != nil || fs[0].Len() != 1518 {
		t.Fatalf("WriteFrames([1519, 1518, 13 bytes]) = %d, %v, fs[0] %d bytes; want 1, nil, the 1518-byte frame first", n, err, fs[0].Len())
	}
	if b, err := peer.Recv(2 * time.Second); err != nil || !bytes.Equal(b, ethFrame(1, 1518)) {
		t.Fatalf("peer received %d bytes, %v; want the 1518-byte frame", len(b), err)
	}
	if b, err := peer.Recv(100 * time.Millisecond); err == nil {
		t.Fatalf("peer received %d more bytes", len(b))
	}
	if o, r := d.EgressDrops[ports.DropOversize].Load(), d.EgressDrops[ports.DropRunt].Load(); o != 1 || r != 1 {
		t.Fatalf("egress drops: oversize %d, runt %d; want 1 and 1", o, r)
	}
}

// TestLinkDown takes the interface down under the port: writes drop as
// link_down without an error and LinkUp follows.
func TestLinkDown(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	setUp := func(up bool) {
		ns.do(t, func() error {
			l, err := netlink.LinkByName("zsw0")
			if err != nil {
				return err
			}
			if up {
				return netlink.LinkSetUp(l)
			}
			return netlink.LinkSetDown(l)
		})
	}
	fs := frames(t, 3, frame.DefaultSlotSize)
	for i, f := range fs {
		setFrame(f, ethFrame(i, 60))
	}
	setUp(false)
	if n, err := d.WriteFrames(fs); n != 0 || err != nil {
		t.Fatalf("WriteFrames while down = %d, %v; want 0, nil", n, err)
	}
	if got := d.EgressDrops[ports.DropLinkDown].Load(); got != 3 || d.LinkUp.Load() {
		t.Fatalf("link_down drops %d, LinkUp %v; want 3, false", got, d.LinkUp.Load())
	}
	setUp(true)
	if n, err := d.WriteFrames(fs); n != 3 || err != nil {
		t.Fatalf("WriteFrames when up again = %d, %v; want 3, nil", n, err)
	}
	if !d.LinkUp.Load() {
		t.Fatal("LinkUp still false after a write went through")
	}
}

// TestARP has the host's own stack answer the port: an ARP request for an
// address on the interface, written into the TAP, must come back as the
// kernel's reply.
func TestARP(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	ns.do(t, func() error {
		l, err := netlink.LinkByName("zsw0")
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr("10.77.0.1/24")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, a)
	})
	mac := []byte{0x02, 0x7a, 0x73, 0, 0, 0x02}
	req := arpRequest(mac, net.IPv4(10, 77, 0, 2).To4(), net.IPv4(10, 77, 0, 1).To4())
	fs := frames(t, 8, frame.DefaultSlotSize)
	setFrame(fs[0], req)
	if n, err := d.WriteFrames(fs[:1]); n != 1 || err != nil {
		t.Fatalf("WriteFrames(ARP request) = %d, %v", n, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n := readWithin(t, d, fs, time.Until(deadline))
		for _, f := range fs[:n] {
			b := f.Bytes()
			if len(b) >= 42 && binary.BigEndian.Uint16(b[12:]) == 0x0806 && binary.BigEndian.Uint16(b[20:]) == 2 {
				if !bytes.Equal(b[0:6], mac) || !bytes.Equal(b[28:32], []byte{10, 77, 0, 1}) || !bytes.Equal(b[32:38], mac) {
					t.Fatalf("ARP reply % x: want one to %x from 10.77.0.1", b[:42], mac)
				}
				return
			}
		}
	}
	t.Fatal("no ARP reply from the kernel")
}

// arpRequest returns a broadcast ARP request from mac/ip asking for target.
func arpRequest(mac, ip, target []byte) []byte {
	b := make([]byte, 42)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:], 0x0806)
	binary.BigEndian.PutUint16(b[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[16:], 0x0800) // IPv4
	b[18], b[19] = 6, 4
	binary.BigEndian.PutUint16(b[20:], 1) // request
	copy(b[22:28], mac)
	copy(b[28:32], ip)
	copy(b[38:42], target)
	return b
}

// TestCloseWhileReading closes the port from another goroutine while
// ReadFrames waits; ReadFrames must return net.ErrClosed promptly.
func TestCloseWhileReading(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	fs := frames(t, 4, frame.DefaultSlotSize)
	errc := make(chan error, 1)
	go func() {
		_, err := d.ReadFrames(fs)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrames after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock ReadFrames")
	}
	if ns.exists(t, "zsw0") {
		t.Fatal("zsw0 still exists after Close")
	}
}

// TestDeletedUnderneath deletes the interface while the port reads: the
// port is gone for good, and ReadFrames says so.
func TestDeletedUnderneath(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	fs := frames(t, 4, frame.DefaultSlotSize)
	errc := make(chan error, 1)
	go func() {
		_, err := d.ReadFrames(fs)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ns.do(t, func() error {
		l, err := netlink.LinkByName("zsw0")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), "deleted") {
			t.Fatalf("ReadFrames after the interface was deleted: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("deleting the interface did not end ReadFrames")
	}
	setFrame(fs[0], ethFrame(0, 60))
	if n, err := d.WriteFrames(fs[:1]); n != 0 || err == nil {
		t.Fatalf("WriteFrames after the interface was deleted = %d, %v; want 0 and an error", n, err)
	}
	if got := d.EgressDrops[ports.DropLinkDown].Load(); got != 1 {
		t.Fatalf("link_down drops %d, want 1", got)
	}
}

func TestZeroAllocs(t *testing.T) {
	ns := newNS(t)
	d := ns.open(t, "zsw0", Options{})
	peer := newPacketPeer(t, ns, "zsw0")
	out, in := frames(t, 8, frame.DefaultSlotSize), frames(t, 8, frame.DefaultSlotSize)
	for i, f := range out {
		setFrame(f, ethFrame(i, 60))
	}
	b := ethFrame(0, 60)
	if a := testing.AllocsPerRun(100, func() {
		if n, err := d.WriteFrames(out); n != len(out) || err != nil {
			t.Fatalf("WriteFrames = %d, %v", n, err)
		}
	}); a != 0 {
		t.Errorf("WriteFrames: %v allocs per call, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if n, _ := d.TryWriteFrames(out); n != tryMax {
			t.Fatalf("TryWriteFrames = %d, want %d", n, tryMax)
		}
	}); a != 0 {
		t.Errorf("TryWriteFrames: %v allocs per call, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		for range 4 {
			if err := peer.Send(b); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		for got < 4 {
			n, err := d.ReadFrames(in)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	}); a != 0 {
		t.Errorf("ReadFrames: %v allocs per call, want 0", a)
	}
}
