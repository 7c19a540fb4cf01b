// Package porttest is the contract suite every port kind runs: it drives a
// ports.Port against the raw remote end a QEMU would see, and checks what
// the ports.Port documentation promises, so that no kind drifts from it.
//
// A kind's test calls Run with a function that makes a fresh port and its
// peer:
//
//	func TestContract(t *testing.T) {
//		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) { ... })
//	}
package porttest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A Peer is the far end of a port as the QEMU instance sees it: it sends
// and receives whole frames in the port kind's own framing.
type Peer interface {
	// Send sends one frame to the port.
	Send(frame []byte) error
	// Recv returns the next frame from the port, or an error after
	// timeout.
	Recv(timeout time.Duration) ([]byte, error)
	// Close closes the peer's end.
	Close() error
}

// slotSize is the frame slot every test uses.
const slotSize = frame.DefaultSlotSize

// wait bounds every step that should take milliseconds.
const wait = 5 * time.Second

// Run runs the contract suite for an Ethernet port kind. newPair makes a
// fresh, connected port and peer for each subtest and arranges for both to
// be closed when it ends (t.Cleanup); the suite closes the port itself in
// some subtests, so Close must be safe to call twice.
func Run(t *testing.T, newPair func(t *testing.T) (p ports.Port, peer Peer)) {
	RunWith(t, Options{Sizes: EthernetSizes, OversizeIn: true}, newPair)
}

// EthernetSizes covers the shortest Ethernet frame, the common ones and the
// largest the slot holds.
var EthernetSizes = []int{14, 60, 64, 100, 1500, 1514, 1518, slotSize}

// Options adapt the suite to kinds whose frames are not Ethernet, such as
// 802.15.4 PSDUs of at most 127 bytes.
type Options struct {
	// Sizes are the frame sizes sent each way, at most the slot size.
	Sizes []int
	// OversizeIn runs the check that a frame longer than the slot is
	// dropped and counted; only for kinds whose framing can carry one.
	OversizeIn bool
}

// RunWith is Run for a kind with its own frame sizes.
func RunWith(t *testing.T, opt Options, newPair func(t *testing.T) (p ports.Port, peer Peer)) {
	s := suite{sizes: opt.Sizes}
	tests := []struct {
		name string
		fn   func(t *testing.T, p ports.Port, peer Peer)
	}{
		{"PeerToPort", s.testPeerToPort},
		{"PortToPeer", s.testPortToPeer},
		{"Batch200", s.testBatch200},
		{"OversizeIn", testOversizeIn},
		{"EmptyOut", testEmptyOut},
		{"CloseUnblocksRead", testCloseUnblocksRead},
		{"WriteAfterClose", testWriteAfterClose},
		{"TryWrite", s.testTryWrite},
	}
	for _, tc := range tests {
		if tc.name == "OversizeIn" && !opt.OversizeIn {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			p, peer := newPair(t)
			tc.fn(t, p, peer)
			checkCounters(t, p)
		})
	}
}

// suite holds what the subtests that send frames need.
type suite struct{ sizes []int }

// testFrame returns frame i of size bytes: broadcast, a source MAC and a
// payload that both carry i, so a frame out of order shows which.
func testFrame(i, size int) []byte {
	b := make([]byte, size)
	if size < 14 { // not Ethernet: a pattern that still carries i
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		return b
	}
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0, 0x88, 0xb5})
	binary.BigEndian.PutUint32(b[8:], uint32(i))
	for j := 14; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

func (s suite) testPeerToPort(t *testing.T, p ports.Port, peer Peer) {
	var want [][]byte
	for i, size := range s.sizes {
		want = append(want, testFrame(i, size))
	}
	got := receive(t, p, peer, want, 3) // fewer slots than frames: ReadFrames must stop at len(fs)
	same(t, "port received", got, want)
}

func (s suite) testPortToPeer(t *testing.T, p ports.Port, peer Peer) {
	var want [][]byte
	for i := range 64 {
		want = append(want, testFrame(i, s.sizes[i%len(s.sizes)]))
	}
	got := send(t, p, peer, want)
	same(t, "peer received", got, want)
}

func (s suite) testBatch200(t *testing.T, p ports.Port, peer Peer) {
	var want [][]byte
	for i := range 200 {
		want = append(want, testFrame(i, s.sizes[i%len(s.sizes)]))
	}
	same(t, "peer received", send(t, p, peer, want), want)
	same(t, "port received", receive(t, p, peer, want, 64), want)
}

func testOversizeIn(t *testing.T, p ports.Port, peer Peer) {
	small := testFrame(1, 60)
	if err := peer.Send(testFrame(0, slotSize+1)); err != nil {
		t.Fatalf("peer send: %v", err)
	}
	got := receive(t, p, peer, [][]byte{small}, 8)
	same(t, "port received", got, [][]byte{small})
	s := p.Counters()
	if o, inv := s.IngressDrops[ports.DropOversize].Load(), s.RxInvalid.Load(); o != 1 || inv != 1 {
		t.Fatalf("a frame longer than the slot: oversize %d, rx_invalid %d, want 1 and 1", o, inv)
	}
}

func testEmptyOut(t *testing.T, p ports.Port, peer Peer) {
	fs := frames(t, 2)
	fs[0].SetLen(0)
	good := testFrame(1, 60)
	fs[1].SetLen(copy(fs[1].Space(), good))
	n, err := p.WriteFrames(fs)
	if n != 1 || err != nil {
		t.Fatalf("WriteFrames([empty, 60 bytes]) = %d, %v; want 1, nil", n, err)
	}
	b, err := peer.Recv(wait)
	if err != nil || !bytes.Equal(b, good) {
		t.Fatalf("peer received %d bytes, %v; want the 60-byte frame", len(b), err)
	}
	if b, err := peer.Recv(200 * time.Millisecond); err == nil {
		t.Fatalf("peer received %d more bytes; an empty frame must not be sent", len(b))
	}
	if d := egressDrops(p.Counters()); d != 1 {
		t.Fatalf("egress drops %d, want 1 for the empty frame", d)
	}
}

func testCloseUnblocksRead(t *testing.T, p ports.Port, _ Peer) {
	errc := make(chan error, 1)
	fs := frames(t, 4)
	go func() {
		_, err := p.ReadFrames(fs)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrames after Close: %v, want an error wrapping net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock ReadFrames within 2s")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.ReadFrames(fs); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrames on a closed port: %v, want an error wrapping net.ErrClosed", err)
	}
}

func testWriteAfterClose(t *testing.T, p ports.Port, _ Peer) {
	p.Close()
	fs := frames(t, 4)
	for i, f := range fs {
		f.SetLen(copy(f.Space(), testFrame(i, 60)))
	}
	before := egressDrops(p.Counters())
	done := make(chan struct{})
	var n int
	var err error
	go func() {
		defer close(done)
		n, err = p.WriteFrames(fs)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("WriteFrames after Close did not return within 2s")
	}
	dropped := egressDrops(p.Counters()) - before
	if n != 0 {
		t.Fatalf("WriteFrames after Close wrote %d frames", n)
	}
	if err == nil && dropped != uint64(len(fs)) {
		t.Fatalf("WriteFrames after Close: no error and %d of %d frames counted as dropped", dropped, len(fs))
	}
}

// testTryWrite checks a ports.TryWriter's TryWriteFrames: it writes a
// prefix at once, intact and in order, stops at a frame WriteFrames would
// drop, counts nothing, and leaves the rest to WriteFrames, which sends it
// after what TryWriteFrames wrote. After Close it writes nothing.
func (s suite) testTryWrite(t *testing.T, p ports.Port, peer Peer) {
	tw, ok := p.(ports.TryWriter)
	if !ok {
		t.Skip("not a ports.TryWriter")
	}
	// Datagram ports write directly only once a send has reached the peer.
	same(t, "peer received", send(t, p, peer, [][]byte{testFrame(0, 60)}), [][]byte{testFrame(0, 60)})

	const frames1, empty = 32, 16
	var want [][]byte
	fs := frames(t, frames1+1)
	for i := range frames1 {
		want = append(want, testFrame(i+1, s.sizes[i%len(s.sizes)]))
	}
	for i, f := range fs {
		switch {
		case i < empty:
			f.SetLen(copy(f.Space(), want[i]))
		case i == empty:
			f.SetLen(0)
		default:
			f.SetLen(copy(f.Space(), want[i-1]))
		}
	}
	done := peerReceives(peer, len(want))
	before := egressDrops(p.Counters())
	n, cut := tw.TryWriteFrames(fs)
	if n < 1 || n > empty {
		t.Errorf("TryWriteFrames to an idle peer wrote %d frames; want 1 to %d, up to the empty one", n, empty)
	}
	if d := egressDrops(p.Counters()) - before; d != 0 {
		t.Errorf("TryWriteFrames counted %d drops", d)
	}
	if cut {
		if err := tw.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
	}
	if m, err := p.WriteFrames(fs[n:]); m != frames1-n || err != nil {
		t.Errorf("WriteFrames of the %d frames left = %d, %v; want %d (all but the empty one)", len(fs)-n, m, err, frames1-n)
	}
	if d := egressDrops(p.Counters()) - before; d != 1 {
		t.Errorf("%d drops counted; want 1, the empty frame", d)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("peer receive after %d frames: %v", len(r.got), r.err)
	}
	same(t, "peer received", r.got, want)

	p.Close()
	before = egressDrops(p.Counters())
	if n, _ := tw.TryWriteFrames(fs[:1]); n != 0 {
		t.Errorf("TryWriteFrames after Close wrote %d frames", n)
	}
	if d := egressDrops(p.Counters()) - before; d != 0 {
		t.Errorf("TryWriteFrames after Close counted %d drops", d)
	}
}

// checkCounters checks what every port's counters must satisfy: drops a
// port sees on input count in RxInvalid and IngressDrops alike, and frame
// and byte counts are the engine's, not the port's.
func checkCounters(t *testing.T, p ports.Port) {
	t.Helper()
	s := p.Counters()
	var in uint64
	for r := range ports.NumDropReasons {
		in += s.IngressDrops[r].Load()
	}
	if inv := s.RxInvalid.Load(); inv != in {
		t.Errorf("rx_invalid %d != ingress drops %d", inv, in)
	}
	for name, v := range map[string]uint64{
		"rx_frames": s.RxFrames.Load(), "rx_bytes": s.RxBytes.Load(),
		"tx_frames": s.TxFrames.Load(), "tx_bytes": s.TxBytes.Load(),
		"forwarded": s.Forwarded.Load(), "enqueued": s.Enqueued.Load(),
	} {
		if v != 0 {
			t.Errorf("the port counted %s = %d: that is the engine's counter", name, v)
		}
	}
}

func egressDrops(s *ports.Stats) uint64 {
	var n uint64
	for r := range ports.NumDropReasons {
		n += s.EgressDrops[r].Load()
	}
	return n
}

// frames returns n frames from a fresh pool of slotSize slots.
func frames(t *testing.T, n int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	if got := frame.NewPool(n, slotSize).Get(fs); got != n {
		t.Fatalf("pool gave %d of %d frames", got, n)
	}
	return fs
}

// receive has peer send want while the port reads with batch slots, and
// returns what the port read. Reading starts first: a stream peer may
// block until it does.
func receive(t *testing.T, p ports.Port, peer Peer, want [][]byte, batch int) [][]byte {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	fs := frames(t, batch)
	go func() {
		var got [][]byte
		for len(got) < len(want) {
			n, err := p.ReadFrames(fs)
			if n > len(fs) || n > p.BatchSize() {
				err = errors.New("ReadFrames filled more frames than it was given or than BatchSize")
			}
			for _, f := range fs[:min(n, len(fs))] {
				got = append(got, bytes.Clone(f.Bytes()))
			}
			if err != nil {
				done <- result{got, err}
				return
			}
		}
		done <- result{got, nil}
	}()
	for i, b := range want {
		if err := peer.Send(b); err != nil {
			p.Close()
			<-done
			t.Fatalf("peer send %d: %v", i, err)
		}
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", len(r.got), r.err)
		}
		return r.got
	case <-time.After(wait):
		p.Close() // unblock the reader
		r := <-done
		t.Fatalf("port received %d of %d frames in %v", len(r.got), len(want), wait)
		return nil
	}
}

// received is what a peer received, and the error that stopped it early.
type received struct {
	got [][]byte
	err error
}

// peerReceives has peer receive n frames in the background, each within
// wait, and delivers them, or those it got before an error.
func peerReceives(peer Peer, n int) <-chan received {
	done := make(chan received, 1)
	go func() {
		var got [][]byte
		for len(got) < n {
			b, err := peer.Recv(wait)
			if err != nil {
				done <- received{got, err}
				return
			}
			got = append(got, b)
		}
		done <- received{got, nil}
	}()
	return done
}

// send writes want with one WriteFrames call while the peer receives, and
// returns what the peer received.
func send(t *testing.T, p ports.Port, peer Peer, want [][]byte) [][]byte {
	t.Helper()
	done := peerReceives(peer, len(want))
	fs := frames(t, len(want))
	for i, f := range fs {
		f.SetLen(copy(f.Space(), want[i]))
	}
	n, err := p.WriteFrames(fs)
	if n != len(want) || err != nil {
		t.Errorf("WriteFrames(%d frames) = %d, %v", len(want), n, err)
	}
	r := <-done
	if r.err != nil && !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("peer receive after %d frames: %v", len(r.got), r.err)
	}
	return r.got
}

// same fails unless got and want hold the same frames in the same order.
func same(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: frame %d is %d bytes (% x ...), want %d bytes (% x ...)", what, i,
				len(got[i]), got[i][:min(16, len(got[i]))], len(want[i]), want[i][:min(16, len(want[i]))])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s %d frames, want %d", what, len(got), len(want))
	}
}
