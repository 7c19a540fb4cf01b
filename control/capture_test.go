package control

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// fakeCapture hands out the packets a test sends on ch.
type fakeCapture struct {
	info   CaptureInfo
	ifaces []CaptureInterface
	ch     chan Packet
	done   chan struct{}
	once   sync.Once
}

func (c *fakeCapture) Info() CaptureInfo              { return c.info }
func (c *fakeCapture) Interfaces() []CaptureInterface { return c.ifaces }

func (c *fakeCapture) Read(ctx context.Context, dst []Packet) (int, error) {
	select {
	case p := <-c.ch:
		dst[0] = p
		return 1, nil
	case <-c.done:
		return 0, io.EOF
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *fakeCapture) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

var (
	fakeCapMu   sync.Mutex
	fakeCapLive = map[*fakeSwitch]*fakeCapture{}
)

func (f *fakeSwitch) Capture(port string) (CaptureStream, error) {
	if port != "all" {
		if _, err := f.Port(port); err != nil {
			return nil, err
		}
	}
	c := &fakeCapture{
		info:   CaptureInfo{ID: 7, Port: port, Frames: 2, Drops: 1},
		ifaces: []CaptureInterface{{Name: "lab/1", Kind: "stream-listen", LinkType: LinkTypeEthernet}},
		ch:     make(chan Packet),
		done:   make(chan struct{}),
	}
	fakeCapMu.Lock()
	fakeCapLive[f] = c
	fakeCapMu.Unlock()
	return c, nil
}

func (f *fakeSwitch) Captures() []CaptureInfo {
	fakeCapMu.Lock()
	defer fakeCapMu.Unlock()
	if c := fakeCapLive[f]; c != nil {
		select {
		case <-c.done:
		default:
			return []CaptureInfo{c.info}
		}
	}
	return nil
}

func (f *fakeSwitch) liveCapture() *fakeCapture {
	fakeCapMu.Lock()
	defer fakeCapMu.Unlock()
	return fakeCapLive[f]
}

// TestCaptureStream streams a capture over the socket and reads it back
// as pcapng: interfaces as ports appear, link types, directions, lengths.
func TestCaptureStream(t *testing.T) {
	f := newFake()
	path := filepath.Join(t.TempDir(), "ctl")
	srv, err := Serve(path, 0, Handler(f))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := NewClient(path)

	if _, err := c.Capture("nope"); StatusOf(err) != 404 {
		t.Fatalf("capture of an unknown port: %v", err)
	}
	if _, err := c.Capture(""); StatusOf(err) != 400 {
		t.Fatalf("capture without a port: %v", err)
	}
	cr, err := c.Capture("lab/1")
	if err != nil {
		t.Fatal(err)
	}
	if cr.ID != 7 {
		t.Fatalf("capture id %d", cr.ID)
	}
	if cs, err := c.Captures(); err != nil || len(cs) != 1 || cs[0].Drops != 1 || cs[0].Port != "lab/1" {
		t.Fatalf("captures: %+v %v", cs, err)
	}
	fc := f.liveCapture()
	now := time.Now()
	eth := bytes.Repeat([]byte{0xab}, 60)
	wpan := []byte{0x41, 0xc8, 0x01, 0xff, 0xff}
	go func() {
		fc.ch <- Packet{CaptureInterface: fc.ifaces[0], Time: now, Dir: DirInbound, Length: 60, Data: eth}
		fc.ch <- Packet{CaptureInterface: CaptureInterface{Name: "w/1", Kind: "wpan-listen", LinkType: LinkTypeIEEE802154NoFCS}, Time: now, Dir: DirOutbound, Length: 5, Data: wpan}
		fc.ch <- Packet{CaptureInterface: fc.ifaces[0], Time: now, Dir: DirOutbound, Length: 1514, Data: eth[:20]}
	}()
	r, err := pcapgo.NewNgReader(cr, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		iface    int
		dir      pcapgo.NgEpbFlag
		capLen   int
		length   int
		linkType int
	}
	for i, w := range []want{{0, pcapgo.NgEpbFlagDirectionInbound, 60, 60, 1}, {1, pcapgo.NgEpbFlagDirectionOutbound, 5, 5, 230}, {0, pcapgo.NgEpbFlagDirectionOutbound, 20, 1514, 1}} {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		intf, _ := r.Interface(ci.InterfaceIndex)
		if ci.InterfaceIndex != w.iface || opts.Flags == nil || opts.Flags.Direction != w.dir ||
			len(data) != w.capLen || ci.Length != w.length || int(intf.LinkType) != w.linkType || !ci.Timestamp.Equal(now) {
			t.Fatalf("packet %d: %+v flags %+v link type %d", i, ci, opts.Flags, intf.LinkType)
		}
	}
	if n := r.NInterfaces(); n != 2 {
		t.Fatalf("%d interfaces, want 2", n)
	}
	if intf, _ := r.Interface(1); intf.Name != "w/1" {
		t.Fatalf("interface 1 is %q", intf.Name)
	}

	// Hanging up stops the capture.
	cr.Close()
	select {
	case <-fc.done:
	case <-time.After(5 * time.Second):
		t.Fatal("capture still running after the client hung up")
	}

	// Closing the server ends a live stream at once.
	cr, err = c.Capture("all")
	if err != nil {
		t.Fatal(err)
	}
	defer cr.Close()
	start := time.Now()
	srv.Close()
	io.Copy(io.Discard, cr)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("server close took %v with a capture streaming", d)
	}
}
