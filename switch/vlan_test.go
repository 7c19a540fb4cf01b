package engine

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/ports"
)

// tagged returns frame b with an 802.1Q tag (PCP pcp, VID vid) after the MACs.
func tagged(b []byte, pcp uint8, vid uint16) []byte {
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid8021Q)
	out = binary.BigEndian.AppendUint16(out, uint16(pcp)<<13|vid)
	return append(out, b[12:]...)
}

func attachWith(t *testing.T, e *Engine, name string, m *memPort, c PortConfig) *Port {
	t.Helper()
	p, err := e.AttachWith(name, "mem", m, c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func vlans(t *testing.T, s string) *VLANSet {
	t.Helper()
	v, err := ParseVLANs(s)
	if err != nil {
		t.Fatal(err)
	}
	return &v
}

// The zeth-vlan.conf lab: a host with VLANs 100 and 200 on one trunk, an
// access port in each VLAN, and a plain (default) port.
func TestVLANAccessAndTrunk(t *testing.T) {
	e := newEngine(t, Config{})
	trunk, a100, a200, plain := newMemPort(), newMemPort(), newMemPort(), newMemPort()
	pt := attachWith(t, e, "trunk", trunk, PortConfig{Trunk: vlans(t, "100+200")})
	p100 := attachWith(t, e, "a100", a100, PortConfig{Access: 100})
	attachWith(t, e, "a200", a200, PortConfig{Access: 200})
	attach(t, e, "plain", plain)

	// A broadcast tagged 100 from the trunk reaches only VLAN 100's access
	// port, untagged, and the default port (a trunk of all VLANs) tagged.
	bc := ethFrame(bcast, macA, 60)
	trunk.inject(tagged(bc, 5, 100))
	expectFrame(t, a100, bc, "a100")
	expectFrame(t, plain, tagged(bc, 5, 100), "plain (tag kept, PCP too)")
	expectNothing(t, a200, "a200")

	// The access port's reply goes back to the trunk tagged 100, learned.
	reply := ethFrame(macA, macB, 60)
	a100.inject(reply)
	expectFrame(t, trunk, tagged(reply, 0, 100), "trunk")
	expectNothing(t, plain, "plain (A was learned in VLAN 100 on the trunk)")
	if id, ok := e.FDB().Lookup(fdb.Key{MAC: macB, VLAN: 100}); !ok || id != p100.ID {
		t.Fatalf("B not learned in VLAN 100: %d %v", id, ok)
	}
	if _, ok := e.FDB().Lookup(fdb.Key{MAC: macB, VLAN: 1}); ok {
		t.Fatal("B learned in VLAN 1 as well")
	}

	// The same MAC in VLAN 200 is a different station: flooded there.
	trunk.inject(tagged(ethFrame(macB, macA, 60), 0, 200))
	expectFrame(t, a200, ethFrame(macB, macA, 60), "a200")
	expectFrame(t, plain, tagged(ethFrame(macB, macA, 60), 0, 200), "plain")
	expectNothing(t, a100, "a100 (the VLAN 200 frame)")

	// Untagged frames on the trunk are its native VLAN 1 (the default,
	// added to 100+200): they reach the plain port only. Tagged frames for
	// VLANs the trunk does not carry are dropped; so are foreign tags on an
	// access port.
	trunk.inject(ethFrame(bcast, macA, 60))
	expectFrame(t, plain, ethFrame(bcast, macA, 60), "plain (VLAN 1)")
	trunk.inject(tagged(bc, 0, 300))
	a100.inject(tagged(ethFrame(bcast, macB, 60), 0, 200))
	expectNothing(t, a100, "a100")
	expectNothing(t, plain, "plain")
	waitFor(t, func() bool {
		return pt.Stats().IngressDrops[ports.DropVLAN].Load() == 1 && p100.Stats().IngressDrops[ports.DropVLAN].Load() == 1
	}, "vlan drops")
	if n := pt.Stats().IngressDrops[ports.DropVLAN].Load(); n != 1 {
		t.Fatalf("trunk vlan drops %d", n)
	}
}

func TestVLANNativeAndPriorityTags(t *testing.T) {
	e := newEngine(t, Config{})
	trunk, acc := newMemPort(), newMemPort()
	attachWith(t, e, "trunk", trunk, PortConfig{Trunk: vlans(t, "10"), Native: 10})
	attachWith(t, e, "acc", acc, PortConfig{Access: 10})
	f := ethFrame(bcast, macA, 60)
	// Untagged on the trunk is its native VLAN 10; it leaves the trunk untagged too.
	trunk.inject(f)
	expectFrame(t, acc, f, "acc")
	acc.inject(ethFrame(bcast, macB, 60))
	expectFrame(t, trunk, ethFrame(bcast, macB, 60), "trunk (native: untagged)")
	// A priority tag (VID 0) joins the PVID and leaves an access port untagged.
	trunk.inject(tagged(f, 6, 0))
	expectFrame(t, acc, f, "acc (priority tag stripped)")

	// A priority-tagged frame to a port that tags VLAN 10 gets its VID
	// rewritten, keeping the priority, instead of a second tag.
	t2 := newMemPort()
	attachWith(t, e, "t2", t2, PortConfig{Trunk: vlans(t, "10"), DropUntagged: true})
	acc.inject(tagged(ethFrame(bcast, macC, 60), 3, 0))
	expectFrame(t, t2, tagged(ethFrame(bcast, macC, 60), 3, 10), "t2")
	expectFrame(t, trunk, ethFrame(bcast, macC, 60), "trunk")
}

// A flooded frame shared by several egress ports is copied only for the
// ports that change it; the others see the original bytes.
func TestVLANSharedFrameCopiedOnRetag(t *testing.T) {
	e := newEngine(t, Config{})
	src, untag, tag1, tag2 := newMemPort(), newMemPort(), newMemPort(), newMemPort()
	attachWith(t, e, "src", src, PortConfig{Access: 7})
	attachWith(t, e, "untag", untag, PortConfig{Access: 7})
	attachWith(t, e, "tag1", tag1, PortConfig{Trunk: vlans(t, "7")})
	attachWith(t, e, "tag2", tag2, PortConfig{Trunk: vlans(t, "7")})
	for i := range 200 {
		f := ethFrame(bcast, macA, 60+i)
		src.inject(f)
		expectFrame(t, untag, f, "untag")
		expectFrame(t, tag1, tagged(f, 0, 7), "tag1")
		expectFrame(t, tag2, tagged(f, 0, 7), "tag2")
	}
}

func TestVLANConfigChangeAtRunTime(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	f := ethFrame(bcast, macA, 60)
	a.inject(f)
	expectFrame(t, b, f, "b")
	if err := e.SetPortConfig("b", PortConfig{Access: 5}); err != nil {
		t.Fatal(err)
	}
	a.inject(f) // VLAN 1 now reaches nobody
	expectNothing(t, b, "b in VLAN 5")
	if got := pb.Config(); got.Access != 5 || got.String() != "access 5" {
		t.Fatalf("config %+v %q", got, got.String())
	}
	if err := e.SetPortConfig("b", PortConfig{Access: 5, Native: 3}); err == nil {
		t.Fatal("an access port with a native VLAN was accepted")
	}
	if err := e.SetPortConfig("nope", PortConfig{}); err == nil {
		t.Fatal("no error for an unknown port")
	}
}

func TestParseVLANs(t *testing.T) {
	for in, want := range map[string]string{
		"all": "all", "1-4094": "all", "100": "100", "100+200": "100+200",
		"300-310+5": "5+300-310", "4094": "4094", "1+2+3": "1-3",
	} {
		s, err := ParseVLANs(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if s.String() != want {
			t.Errorf("%q: %q, want %q", in, s.String(), want)
		}
	}
	for _, bad := range []string{"", "0", "4095", "x", "10-5", "1,2", "+", "100+"} {
		if _, err := ParseVLANs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A frame that fills the slot cannot take a tag: dropped as oversize at
// the port that would tag it, delivered elsewhere.
func TestVLANTagDoesNotFit(t *testing.T) {
	e := newEngine(t, Config{SlotSize: 256})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	attachWith(t, e, "a", a, PortConfig{Access: 2})
	pb := attachWith(t, e, "b", b, PortConfig{Trunk: vlans(t, "2")})
	attachWith(t, e, "c", c, PortConfig{Access: 2})
	f := ethFrame(bcast, macA, 254)
	a.inject(f)
	expectFrame(t, c, f, "c")
	expectNothing(t, b, "b")
	waitFor(t, func() bool { return pb.Stats().EgressDrops[ports.DropOversize].Load() == 1 }, "oversize at b")
	if !bytes.Equal(f[:6], bcast[:]) {
		t.Fatal("test frame changed")
	}
}
