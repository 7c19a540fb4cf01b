package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/zswitch/zswitch/ports"
	"golang.org/x/sys/unix"
)

// Tags as TPID<<16 | TCI.
const (
	tagVID7PCP5 = 0x8100_0000 | 5<<13 | 7
	tagVID42    = 0x8100_0000 | 42
	tagVID43    = 0x8100_0000 | 43
	tagPrio3    = 0x8100_0000 | 3<<13 // VID 0: priority only
	tagSVID100  = 0x88a8_0000 | 100
)

func TestOpenErrors(t *testing.T) {
	n := newNet(t)
	var err error
	n.do(t, func() { _, err = Open("nosuchif0", Options{}) })
	if !errors.Is(err, errNoInterface) {
		t.Errorf("Open(missing interface) = %v, want errNoInterface", err)
	}
	for _, name := range []string{"", "sixteen-bytes-xx"} {
		if _, err := Open(name, Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
}

// TestVLANIn: frames keep their tags on the way in (the kernel takes them
// out of the frame before packet sockets see it), and untagged frames are
// untouched.
func TestVLANIn(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	r := startReader(t, c)
	peer := n.peer(t, "zsb")

	qinq := insertTag(tagged(4, 100, tagVID7PCP5), tagSVID100)
	for _, want := range [][]byte{
		ethFrame(1, 60),
		tagged(2, 100, tagVID7PCP5),
		ethFrame(3, 1514),
		tagged(4, 1514, tagVID7PCP5), // 1518 bytes: the largest at MTU 1500
		qinq,                         // only the outer tag is taken out
		tagged(5, 64, tagSVID100),
		tagged(6, 64, tagPrio3),
	} {
		peer.send(t, want)
		r.expect(t, want)
	}
	if d := c.RxInvalid.Load(); d != 0 {
		t.Errorf("rx_invalid %d, want 0", d)
	}
}

// TestVLANInFromVlanDevice: a vlan device tags in the skb only, never in
// the frame; the port must still deliver the tag.
func TestVLANInFromVlanDevice(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	n.vlan(t, "zsb", "zsb.42", 42)
	c := n.openUp(t, "zsa", Options{})
	r := startReader(t, c)
	untagged := ethFrame(7, 80)
	n.peer(t, "zsb.42").send(t, untagged)
	r.expect(t, insertTag(untagged, tagVID42))
}

// TestVLANOut: tagged frames leave tagged. The kernel on the far side
// takes the tag out as it does for any tagged frame (a socket without
// auxdata sees the frame 4 bytes shorter) and reports it in auxdata.
func TestVLANOut(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	peer, bare := n.peer(t, "zsb"), n.peer(t, "zsb")
	bare.stripped = true

	f42, fad, plain := tagged(1, 100, tagVID42), tagged(2, 100, tagSVID100), ethFrame(3, 100)
	if got := write(t, c, f42, fad, plain); got != 3 {
		t.Fatalf("WriteFrames wrote %d of 3", got)
	}
	for _, want := range [][]byte{f42, fad, plain} {
		expectPeer(t, peer, want)
	}
	for _, want := range [][]byte{ethFrame(1, 100), ethFrame(2, 100), plain} {
		expectPeer(t, bare, want)
	}
}

// TestVLANOutToVlanDevice: a vlan device on the far side receives the
// frames tagged with its VID, and nothing else.
func TestVLANOutToVlanDevice(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	n.vlan(t, "zsb", "zsb.42", 42)
	c := n.openUp(t, "zsa", Options{})
	peer42 := n.peer(t, "zsb.42")
	if got := write(t, c, tagged(1, 100, tagVID42), tagged(2, 100, tagVID43), ethFrame(3, 100)); got != 3 {
		t.Fatalf("WriteFrames wrote %d of 3", got)
	}
	expectPeer(t, peer42, ethFrame(1, 100))
	peer42.none(t, 200*time.Millisecond)
}

// TestIgnoreOutgoing: neither the port's own frames nor anything else the
// host transmits on the interface comes back through ReadFrames.
func TestIgnoreOutgoing(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	r := startReader(t, c)
	host, peer := n.peer(t, "zsa"), n.peer(t, "zsb") // host: another sender on zsa

	own, hosts, in := ethFrame(1, 60), ethFrame(2, 60), ethFrame(3, 60)
	if write(t, c, own) != 1 {
		t.Fatal("WriteFrames wrote nothing")
	}
	expectPeer(t, peer, own)
	host.send(t, hosts)
	expectPeer(t, peer, hosts)
	peer.send(t, in)
	r.expect(t, in) // the first frame the port reads
	r.none(t, 100*time.Millisecond)
}

// TestOversizeOut: frames over MTU+18 are dropped by the port, untagged
// frames over MTU+14 by the kernel, both counted as oversize.
func TestOversizeOut(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	peer := n.peer(t, "zsb")

	big := tagged(1, 1514, tagVID42) // 1518: fits
	small := ethFrame(2, 60)
	fs := frames(t, 5)
	for i, b := range [][]byte{ethFrame(9, 1519), big, ethFrame(8, 1516), small, make([]byte, 10)} {
		fs[i].SetLen(copy(fs[i].Space(), b))
	}
	got, err := c.WriteFrames(fs)
	if got != 2 || err != nil {
		t.Fatalf("WriteFrames = %d, %v; want 2, nil", got, err)
	}
	if !bytes.Equal(fs[0].Bytes(), big) || !bytes.Equal(fs[1].Bytes(), small) {
		t.Error("WriteFrames did not move the frames it sent to the front, in order")
	}
	expectPeer(t, peer, big)
	expectPeer(t, peer, small)
	if o, r := c.EgressDrops[ports.DropOversize].Load(), c.EgressDrops[ports.DropRunt].Load(); o != 2 || r != 1 {
		t.Errorf("egress oversize %d, runt %d; want 2 and 1", o, r)
	}
}

// TestOversizeIn: a frame larger than the slot is dropped whole, and a
// tagged frame whose tag would not fit back in the slot too.
func TestOversizeIn(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 9000)
	c := n.openUp(t, "zsa", Options{})
	r := startReader(t, c)
	peer := n.peer(t, "zsb")

	peer.send(t, ethFrame(1, 2049))
	peer.send(t, tagged(2, 2046, tagVID42)) // 2050 with the tag
	ok := tagged(3, 2044, tagVID42)         // 2048: exactly the slot
	peer.send(t, ok)
	r.expect(t, ok)
	if o, inv := c.IngressDrops[ports.DropOversize].Load(), c.RxInvalid.Load(); o != 2 || inv != 2 {
		t.Errorf("ingress oversize %d, rx_invalid %d; want 2 and 2", o, inv)
	}
}

// TestAdminDown: an interface set down and up again is a link outage, not
// an error.
func TestAdminDown(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{PollInterval: 20 * time.Millisecond})
	r := startReader(t, c)
	peer := n.peer(t, "zsb")

	n.down(t, "zsa")
	waitFor(t, "link down", func() bool { return !c.LinkUp.Load() })
	if got := write(t, c, ethFrame(1, 60)); got != 0 {
		t.Fatalf("WriteFrames on a down link wrote %d", got)
	}
	if d := c.EgressDrops[ports.DropLinkDown].Load(); d != 1 {
		t.Errorf("link_down drops %d, want 1", d)
	}
	n.up(t, "zsa")
	waitFor(t, "link up", func() bool { return c.LinkUp.Load() })
	roundTrip(t, c, r, peer, 2)
	if cn, dc := c.Connects.Load(), c.Disconnects.Load(); cn != 2 || dc != 1 {
		t.Errorf("connects %d, disconnects %d; want 2 and 1", cn, dc)
	}
	if e := c.Errors.Load(); e != 0 {
		t.Errorf("errors %d, want 0", e)
	}
}

// TestVethRecreated: the interface deleted and created again under the
// same name, as a USB re-enumeration does: the port re-attaches by itself,
// whether it sees the interface missing or only its new ifindex.
func TestVethRecreated(t *testing.T) {
	for _, gap := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("gap=%v", gap), func(t *testing.T) { testRecreated(t, gap) })
	}
}

func testRecreated(t *testing.T, gap time.Duration) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	r := startReader(t, c)
	roundTrip(t, c, r, n.peer(t, "zsb"), 1)
	oldIndex := c.cur.Load().ifindex

	n.del(t, "zsa")
	if gap > 0 {
		waitFor(t, "link down", func() bool { return !c.LinkUp.Load() })
		if got := write(t, c, ethFrame(1, 60), ethFrame(2, 60)); got != 0 {
			t.Fatalf("WriteFrames without an interface wrote %d", got)
		}
		if d := c.EgressDrops[ports.DropLinkDown].Load(); d != 2 {
			t.Errorf("link_down drops %d, want 2", d)
		}
		time.Sleep(gap)
	}
	n.veth(t, "zsa", "zsb", 1500)
	waitFor(t, "re-attach", func() bool { s := c.cur.Load(); return s != nil && s.ifindex != oldIndex })
	waitFor(t, "link up again", func() bool { return c.LinkUp.Load() })
	roundTrip(t, c, r, n.peer(t, "zsb"), 3)
	if cn, dc := c.Connects.Load(), c.Disconnects.Load(); cn != 2 || dc != 1 {
		t.Errorf("connects %d, disconnects %d; want 2 and 1", cn, dc)
	}
	if d := c.DownTime(); d < gap || d > wait {
		t.Errorf("DownTime %v, want at least the %v the interface was missing", d, gap)
	}
	if !c.LinkUp.Load() {
		t.Error("link down after the round trip")
	}
}

// roundTrip checks one frame each way between the port and the peer.
func roundTrip(t *testing.T, c *Conn, r *reader, peer *rawPeer, i int) {
	t.Helper()
	out, in := ethFrame(100+i, 200), tagged(200+i, 200, tagVID42)
	if got := write(t, c, out); got != 1 {
		t.Fatalf("WriteFrames wrote %d of 1", got)
	}
	expectPeer(t, peer, out)
	peer.send(t, in)
	r.expect(t, in)
}

// TestAllocs: the datapath allocates nothing per frame, tags included.
func TestAllocs(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	a := n.openUp(t, "zsa", Options{})
	b := n.openUp(t, "zsb", Options{})
	const k = 8
	out, in := frames(t, k), frames(t, k)
	for i, f := range out {
		if i%2 == 0 {
			f.SetLen(copy(f.Space(), tagged(i, 200, tagVID42)))
		} else {
			f.SetLen(copy(f.Space(), ethFrame(i, 1514)))
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if m, err := a.WriteFrames(out); m != k || err != nil {
			t.Fatalf("WriteFrames = %d, %v", m, err)
		}
		for got := 0; got < k; {
			m, err := b.ReadFrames(in)
			if err != nil {
				t.Fatal(err)
			}
			got += m
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per batch of %d, want 0", allocs, k)
	}
	if !bytes.Equal(in[0].Bytes()[:16], out[0].Bytes()[:16]) {
		t.Errorf("tag lost: % x", in[0].Bytes()[:16])
	}
}

func TestAuxTag(t *testing.T) {
	aux := func(status uint32, tci, tpid uint16) []byte {
		b := make([]byte, unix.CmsgSpace(sizeofAux))
		h := (*unix.Cmsghdr)(unsafeData(b))
		h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
		h.SetLen(unix.CmsgLen(sizeofAux))
		d := b[unix.CmsgLen(0):]
		binary.NativeEndian.PutUint32(d[auxStatus:], status)
		binary.NativeEndian.PutUint16(d[auxTCI:], tci)
		binary.NativeEndian.PutUint16(d[auxTPID:], tpid)
		return b
	}
	const valid, tpidValid = unix.TP_STATUS_VLAN_VALID, unix.TP_STATUS_VLAN_TPID_VALID
	for _, tc := range []struct {
		name string
		oob  []byte
		tag  uint32
		ok   bool
	}{
		{"none", nil, 0, false},
		{"untagged", aux(0, 0, 0), 0, false},
		{"8021q", aux(valid|tpidValid, 42, 0x8100), tagVID42, true},
		{"8021ad", aux(valid|tpidValid, 100, 0x88a8), tagSVID100, true},
		{"no tpid", aux(valid, 42, 0x88a8), tagVID42, true},
		{"zero tpid", aux(valid|tpidValid, 42, 0), tagVID42, true},
		{"short", aux(valid, 42, 0)[:unix.CmsgLen(sizeofAux)-1], 0, false},
		{"other first", append(otherCmsg(), aux(valid, 43, 0)...), tagVID43, true},
	} {
		tag, ok := auxTag(tc.oob)
		if tag != tc.tag || ok != tc.ok {
			t.Errorf("%s: auxTag = %#x, %v; want %#x, %v", tc.name, tag, ok, tc.tag, tc.ok)
		}
	}
}

// otherCmsg is a control message auxTag must skip.
func otherCmsg() []byte {
	b := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafeData(b))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMP
	h.SetLen(unix.CmsgLen(4))
	return b
}

func FuzzAuxTag(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		oob := make([]byte, len(b)) // aligned, as the kernel's buffer is
		copy(oob, b)
		auxTag(oob) // must not panic
	})
}

func unsafeData(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// TestCloseWhileGone: Close ends a ReadFrames waiting for the interface to
// come back (startReader's cleanup checks it returns net.ErrClosed).
func TestCloseWhileGone(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{})
	startReader(t, c)
	n.del(t, "zsa")
	waitFor(t, "detach", func() bool { return c.cur.Load() == nil })
	time.Sleep(20 * time.Millisecond) // let the reader wait
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteFrames(frames(t, 1)); err == nil {
		t.Error("WriteFrames after Close: no error")
	}
}

// TestKernelDropsCounted: frames the kernel drops because nobody read the
// socket in time show up as no_buffer drops, so that frames read plus
// frames counted equal frames sent.
func TestKernelDropsCounted(t *testing.T) {
	n := newNet(t)
	n.veth(t, "zsa", "zsb", 1500)
	c := n.openUp(t, "zsa", Options{PollInterval: 20 * time.Millisecond})
	peer := n.peer(t, "zsb")
	const sent = 20000 // ~30 MB: far beyond the socket's 4 MiB buffer
	for i := range sent {
		peer.send(t, ethFrame(i, 1514))
	}
	waitFor(t, "kernel drops counted", func() bool { return c.IngressDrops[ports.DropNoBuffer].Load() > 0 })
	r := startReader(t, c)
	read := 0
	for {
		if _, ok := r.tryNext(500 * time.Millisecond); !ok {
			break
		}
		read++
	}
	time.Sleep(100 * time.Millisecond) // one more poll
	if got := uint64(read) + c.IngressDrops[ports.DropNoBuffer].Load(); got != sent {
		t.Fatalf("read %d + kernel drops %d = %d, sent %d", read, c.IngressDrops[ports.DropNoBuffer].Load(), got, sent)
	}
	if c.RxInvalid.Load() != c.IngressDrops[ports.DropNoBuffer].Load() {
		t.Fatal("kernel drops not in rx_invalid: the accounting identity breaks")
	}
}

// tryNext returns the next frame the port read, or false after d.
func (r *reader) tryNext(d time.Duration) ([]byte, bool) {
	select {
	case b := <-r.ch:
		return b, true
	case <-time.After(d):
		return nil, false
	}
}
