package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/stream"
)

// tryPort is a memPort that is also a ports.TryWriter. Its endpoint takes
// a random number of the frames each TryWriteFrames offers and now and
// then cuts the last one: then it takes nothing more until WriteFrames or
// Flush has finished that frame, as a stream port does. It counts calls
// that overlap, which the engine must never make.
type tryPort struct {
	*memPort
	rng      *rand.Rand // used only inside the writing calls, which never overlap
	busy     atomic.Bool
	overlaps atomic.Int64
	cut      atomic.Bool // a frame's rest is pending
	cuts     atomic.Int64
	flushes  atomic.Int64 // Flush calls that finished a cut frame
	refuse   atomic.Bool  // take nothing at all
	all      bool         // take every frame, never cut
}

var _ ports.TryWriter = (*tryPort)(nil)

func newTryPort(seed uint64) *tryPort {
	return &tryPort{memPort: newMemPort(), rng: rand.New(rand.NewPCG(seed, 7))}
}

func (p *tryPort) enter() {
	if !p.busy.CompareAndSwap(false, true) {
		p.overlaps.Add(1)
	}
}

func (p *tryPort) leave() { p.busy.Store(false) }

func (p *tryPort) TryWriteFrames(fs []*frame.Frame) (int, bool) {
	p.enter()
	defer p.leave()
	if p.cut.Load() || p.refuse.Load() || len(fs) == 0 {
		return 0, false
	}
	if p.all {
		p.memPort.WriteFrames(fs)
		return len(fs), false
	}
	n := p.rng.IntN(len(fs) + 1)
	cut := n > 0 && p.rng.IntN(4) == 0
	p.memPort.WriteFrames(fs[:n])
	if cut {
		p.cut.Store(true)
		p.cuts.Add(1)
	}
	return n, cut
}

func (p *tryPort) WriteFrames(fs []*frame.Frame) (int, error) {
	p.enter()
	defer p.leave()
	p.cut.Store(false) // the rest goes out first
	return p.memPort.WriteFrames(fs)
}

func (p *tryPort) Flush() error {
	p.enter()
	defer p.leave()
	if p.cut.Swap(false) {
		p.flushes.Add(1)
	}
	return nil
}

// numbered is a frame from src to dst of the given size carrying seq after
// the header, and then byte(seq) throughout, so a broken frame shows.
func numbered(dst, src [6]byte, seq uint32, size int) []byte {
	b := ethFrame(dst, src, size)
	binary.BigEndian.PutUint32(b[14:], seq)
	for i := 18; i < size; i++ {
		b[i] = byte(seq)
	}
	return b
}

// A seqChecker follows the numbered frames one port receives: every frame
// intact, each source's numbers rising (gaps are frames dropped and
// counted), and the order of arrival kept to compare with a capture.
type seqChecker struct {
	last  map[[6]byte]int64
	order []string
	err   error
}

func newSeqChecker() *seqChecker { return &seqChecker{last: map[[6]byte]int64{}} }

func (c *seqChecker) check(b []byte) {
	if c.err != nil {
		return
	}
	if len(b) < 18 {
		c.err = fmt.Errorf("frame %d is %d bytes", len(c.order), len(b))
		return
	}
	src := [6]byte(b[6:12])
	seq := binary.BigEndian.Uint32(b[14:])
	for i := 18; i < len(b); i++ {
		if b[i] != byte(seq) {
			c.err = fmt.Errorf("frame %d (%x #%d) broken at byte %d", len(c.order), src, seq, i)
			return
		}
	}
	last, ok := c.last[src]
	if ok && int64(seq) <= last {
		c.err = fmt.Errorf("frame %d: %x #%d after #%d: reordered", len(c.order), src, seq, last)
		return
	}
	c.last[src] = int64(seq)
	c.order = append(c.order, fmt.Sprintf("%x#%d", src, seq))
}

// captured reads n Outbound records of c (there are no others) as the
// seqChecker's order strings.
func captured(t *testing.T, c *Capture, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]CaptureRecord, 256)
	var out []string
	for len(out) < n {
		k, err := c.Read(ctx, buf)
		if err != nil {
			t.Fatalf("capture: %v after %d of %d records", err, len(out), n)
		}
		for _, r := range buf[:k] {
			if r.Dir != Outbound {
				t.Fatalf("capture of the receiving port recorded a frame %v", r.Dir)
			}
			out = append(out, fmt.Sprintf("%x#%d", r.Data[6:12], binary.BigEndian.Uint32(r.Data[14:])))
		}
	}
	expectNoRecord(t, c)
	return out
}

// checkEgressIdentity checks Enqueued + TxDuplicated = TxFrames + Σ EgressDrops
// on p and returns the drops.
func checkEgressIdentity(t *testing.T, p *Port) uint64 {
	t.Helper()
	s := p.Stats()
	drops := sumDrops(&s.EgressDrops)
	if got, want := s.Enqueued.Load()+s.TxDuplicated.Load(), s.TxFrames.Load()+drops; got != want {
		t.Errorf("port %s: enqueued %d ≠ tx %d + egress drops %d %v", p.Name, got, s.TxFrames.Load(), drops, dropMap(&s.EgressDrops))
	}
	return drops
}

// settledOut is how many frames p wrote or dropped.
func settledOut(p *Port) int64 {
	s := p.Stats()
	return int64(s.TxFrames.Load() + sumDrops(&s.EgressDrops))
}

// egressSettled reports whether everything queued to p was written or
// dropped.
func egressSettled(p *Port) bool {
	s := p.Stats()
	return p.queued.Load() == 0 && s.Enqueued.Load()+s.TxDuplicated.Load() == s.TxFrames.Load()+sumDrops(&s.EgressDrops)
}

// TestDirectWriteOrderAndCounts: two sources send to one port whose
// endpoint takes a random part of every direct write and cuts frames, so
// every batch is split between the direct write and the queue. Each
// source's frames still arrive in order, the writing calls never overlap,
// every cut frame is finished without waiting for more traffic, the
// counters add up, and the capture records each written frame once, in
// the order written.
func TestDirectWriteOrderAndCounts(t *testing.T) {
	e := newEngine(t, Config{QueueLen: 128, Static: []StaticEntry{{MAC: fdb.MAC(macC), Port: "c"}}})
	a, b, c := newMemPort(), newMemPort(), newTryPort(1)
	a.out, b.out = nil, nil
	c.out = make(chan []byte, 100_000)
	pa, pb := attach(t, e, "a", a), attach(t, e, "b", b)
	pc, err := e.Attach("c", "try", c)
	if err != nil {
		t.Fatal(err)
	}
	cp := capture(t, e, CaptureSelect{Port: "c", Buffer: 16 << 20, SnapLen: 18})
	const n = 20000
	var wg sync.WaitGroup
	var injected atomic.Int64
	for i, m := range []*memPort{a, b} {
		src := [6]byte{0x52, 0x54, 0, 0, 2, byte(i)}
		wg.Go(func() {
			for seq := range uint32(n) {
				// Paced, as a TCP sender would be, so that most frames are
				// written rather than dropped: about QueueLen in flight.
				for injected.Load()-settledOut(pc) > 128 {
					time.Sleep(20 * time.Microsecond)
				}
				injected.Add(1)
				m.inject(numbered(macC, src, seq, 60+int(seq*37%200)))
			}
		})
	}
	wg.Wait()
	waitFor(t, func() bool {
		return pa.Stats().RxFrames.Load() == n && pb.Stats().RxFrames.Load() == n && egressSettled(pc) && !c.cut.Load()
	}, "every frame written or dropped, and no frame left cut")

	chk := newSeqChecker()
	for len(c.out) > 0 {
		chk.check(<-c.out)
	}
	if chk.err != nil {
		t.Fatal(chk.err)
	}
	s := pc.Stats()
	tx, direct := s.TxFrames.Load(), pc.direct.Load()
	drops := checkEgressIdentity(t, pc)
	if got := s.Enqueued.Load(); got != 2*n {
		t.Errorf("enqueued %d, want %d", got, 2*n)
	}
	if uint64(len(chk.order)) != tx || c.written.Load() != tx {
		t.Errorf("endpoint got %d frames (%d written), tx counter %d", len(chk.order), c.written.Load(), tx)
	}
	if o := c.overlaps.Load(); o > 0 {
		t.Errorf("the engine overlapped %d writing calls", o)
	}
	t.Logf("tx %d (direct %d), drops %d, cuts %d, finished by Flush %d", tx, direct, drops, c.cuts.Load(), c.flushes.Load())
	if direct == 0 || direct == tx || c.cuts.Load() == 0 {
		t.Errorf("both paths and cuts should be exercised: tx %d, direct %d, cuts %d", tx, direct, c.cuts.Load())
	}
	if got := captured(t, cp, int(tx)); !equalStrings(got, chk.order) {
		t.Errorf("the capture differs from what was written (%d records, %d frames)", len(got), len(chk.order))
	}
	if st := cp.Stats(); st.Drops != 0 {
		t.Errorf("capture dropped %d", st.Drops)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDirectWriteFlushesCut: a direct write that cuts the last frame of a
// batch leaves nothing queued; the engine still has the egress goroutine
// finish the frame, at once.
func TestDirectWriteFlushesCut(t *testing.T) {
	e := newEngine(t, Config{Static: []StaticEntry{{MAC: fdb.MAC(macB), Port: "b"}}})
	a, b := newMemPort(), newTryPort(2)
	attach(t, e, "a", a)
	pb, err := e.Attach("b", "try", b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		a.inject(numbered(macB, macA, uint32(i), 64))
		waitFor(t, func() bool {
			return pb.Stats().Enqueued.Load() == uint64(i+1) && egressSettled(pb) && !b.cut.Load()
		}, "the frame written and finished")
	}
	t.Logf("direct %d, cuts %d, finished by Flush %d", pb.direct.Load(), b.cuts.Load(), b.flushes.Load())
	if b.flushes.Load() == 0 {
		t.Fatal("no cut frame was finished by Flush")
	}
}

// TestDirectWriteOutImpairment: while a port's "out" line holds frames,
// nothing is written to it directly (that would overtake them); once the
// impairment is removed and the line empty, direct writes resume.
func TestDirectWriteOutImpairment(t *testing.T) {
	e := newEngine(t, Config{Static: []StaticEntry{{MAC: fdb.MAC(macB), Port: "b"}}})
	a, b := newMemPort(), newTryPort(3)
	b.all = true
	attach(t, e, "a", a)
	pb, err := e.Attach("b", "try", b)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetImpairment("b", impair.Config{}, impair.Config{Delay: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	for i := range 20 {
		a.inject(numbered(macB, macA, uint32(i), 64))
	}
	chk := newSeqChecker()
	for range 20 {
		f, ok := b.recv(2 * time.Second)
		if !ok {
			t.Fatal("frame not delivered")
		}
		chk.check(f)
	}
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Fatalf("frames arrived after %v, before the delay", d)
	}
	if pb.direct.Load() != 0 {
		t.Fatalf("%d frames written directly to an impaired port", pb.direct.Load())
	}
	if err := e.SetImpairment("b", impair.Config{}, impair.Config{}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		a.inject(numbered(macB, macA, uint32(20+i), 64))
		f, ok := b.recv(2 * time.Second)
		if !ok {
			t.Fatal("frame not delivered")
		}
		chk.check(f)
	}
	if chk.err != nil {
		t.Fatal(chk.err)
	}
	if pb.direct.Load() == 0 {
		t.Fatal("no direct writes once the line is idle")
	}
	waitFor(t, func() bool { return egressSettled(pb) }, "counters settled")
	checkEgressIdentity(t, pb)
}

// TestDirectWriteVLAN: frames written directly leave with the port's
// tagging, like queued ones.
func TestDirectWriteVLAN(t *testing.T) {
	e := newEngine(t, Config{})
	trunk, acc := newMemPort(), newTryPort(4)
	acc.all = true
	attachWith(t, e, "trunk", trunk, PortConfig{Trunk: vlans(t, "100")})
	pacc, err := e.AttachWith("acc", "try", acc, PortConfig{Access: 100})
	if err != nil {
		t.Fatal(err)
	}
	e.FDB().AddStatic(fdb.Key{MAC: fdb.MAC(macB), VLAN: 100}, pacc.ID)
	f := ethFrame(macB, macA, 60)
	trunk.inject(tagged(f, 3, 100))
	expectFrame(t, acc.memPort, f, "access port (untagged)")
	waitFor(t, func() bool { return egressSettled(pacc) }, "counters settled")
	if pacc.direct.Load() != 1 {
		t.Fatalf("%d frames written directly, want 1", pacc.direct.Load())
	}
	checkEgressIdentity(t, pacc)
}

// TestDirectWriteStream: two QEMU-like peers send numbered frames as fast
// as they can through real stream ports to a third one that reads in
// bursts, so the receiving socket fills, direct writes are cut and batches
// split between direct writes and the queue. Every frame arrives whole,
// each source's in order; the counters add up; the capture holds each
// written frame once.
func TestDirectWriteStream(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) { testDirectWriteStream(t, network) })
	}
}

func testDirectWriteStream(t *testing.T, network string) {
	static := []StaticEntry{{MAC: fdb.MAC(macC), Port: "c"}}
	e := newEngine(t, Config{QueueLen: 256, Static: static})
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "zsw.sock")
	}
	l, err := stream.Listen(network, addr, stream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := map[string]net.Conn{}
	pp := map[string]*Port{}
	for _, name := range []string{"a", "b", "c"} {
		conn, err := net.Dial(network, l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		p, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if pp[name], err = e.Attach(name, "stream", p); err != nil {
			t.Fatal(err)
		}
		conns[name] = conn
	}
	cp := capture(t, e, CaptureSelect{Port: "c", Buffer: 16 << 20, SnapLen: 18})

	const n = 15000
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		src := [6]byte{0x52, 0x54, 0, 0, 3, byte(i)}
		wg.Go(func() {
			var buf []byte
			for seq := range uint32(n) {
				f := numbered(macC, src, seq, 60+int(seq*37%1455))
				buf = binary.BigEndian.AppendUint32(buf, uint32(len(f)))
				buf = append(buf, f...)
				if seq%32 == 31 || seq == n-1 {
					if _, err := conns[name].Write(buf); err != nil {
						t.Errorf("peer %s: %v", name, err)
						return
					}
					buf = buf[:0]
				}
			}
		})
	}
	// c reads in bursts, pausing now and then so its socket fills up.
	chk := newSeqChecker()
	var got atomic.Int64
	readDone := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(conns["c"], 64<<10)
		var hdr [4]byte
		for k := 0; ; k++ {
			if k%2000 == 1999 {
				time.Sleep(3 * time.Millisecond)
			}
			if _, err := io.ReadFull(r, hdr[:]); err != nil {
				readDone <- err
				return
			}
			b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(r, b); err != nil {
				readDone <- err
				return
			}
			chk.check(b)
			if chk.err != nil {
				readDone <- chk.err
				return
			}
			got.Add(1)
		}
	}()
	wg.Wait()
	pc := pp["c"]
	waitFor(t, func() bool {
		return pp["a"].Stats().RxFrames.Load() == n && pp["b"].Stats().RxFrames.Load() == n &&
			egressSettled(pc) && got.Load() == int64(pc.Stats().TxFrames.Load())
	}, "every frame delivered or dropped")
	conns["c"].Close()
	if err := <-readDone; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	s := pc.Stats()
	tx := s.TxFrames.Load()
	drops := checkEgressIdentity(t, pc)
	if got := s.Enqueued.Load(); got != 2*n {
		t.Errorf("enqueued %d, want %d", got, 2*n)
	}
	t.Logf("tx %d (direct %d), drops %v", tx, pc.direct.Load(), dropMap(&s.EgressDrops))
	if d := s.EgressDrops[ports.DropQueueFull].Load(); d != drops {
		t.Errorf("drops other than queue_full: %v", dropMap(&s.EgressDrops))
	}
	if pc.direct.Load() == 0 {
		t.Error("no frame was written directly")
	}
	if got := captured(t, cp, int(tx)); !equalStrings(got, chk.order) {
		t.Errorf("the capture differs from what was received (%d records, %d frames)", len(got), len(chk.order))
	}
	if st := cp.Stats(); st.Drops != 0 {
		t.Errorf("capture dropped %d", st.Drops)
	}
}
