package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// readN reads records from c until it has n of them, copying their data.
func readN(t *testing.T, c *Capture, n int) []CaptureRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []CaptureRecord
	buf := make([]CaptureRecord, 16)
	for len(out) < n {
		k, err := c.Read(ctx, buf)
		if err != nil {
			t.Fatalf("read: %v after %d of %d records", err, len(out), n)
		}
		for _, r := range buf[:k] {
			r.Data = bytes.Clone(r.Data)
			out = append(out, r)
		}
	}
	return out
}

// expectNoRecord checks that nothing more arrives at c.
func expectNoRecord(t *testing.T, c *Capture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var buf [1]CaptureRecord
	if n, err := c.Read(ctx, buf[:]); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected record %+v (%v)", buf[0], err)
	}
}

func capture(t *testing.T, e *Engine, sel CaptureSelect) *Capture {
	t.Helper()
	c, err := e.Capture(sel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCaptureSelectionAndDirections(t *testing.T) {
	e := newEngine(t, Config{})
	a, b, c := newMemPort(), newMemPort(), newMemPort()
	attach(t, e, "a", a)
	attach(t, e, "b", b)
	attach(t, e, "c", c)
	if _, err := e.Capture(CaptureSelect{Port: "nope"}); !errors.Is(err, ErrNoPort) {
		t.Fatalf("capture of an unknown port: %v", err)
	}
	onA := capture(t, e, CaptureSelect{Port: "a"})
	all := capture(t, e, CaptureSelect{Port: "all"})
	onB := capture(t, e, CaptureSelect{Port: "b", SnapLen: 20})
	if got := len(e.Captures()); got != 3 {
		t.Fatalf("%d captures listed, want 3", got)
	}
	if ps := onA.Ports(); len(ps) != 1 || ps[0].Name != "a" || onA.Selection() != "a" || all.Selection() != "all" {
		t.Fatalf("selection: %v %q %q", ps, onA.Selection(), all.Selection())
	}

	// A broadcast from a floods to b and c: in on a, out on b and c.
	f1 := ethFrame(bcast, macA, 100)
	a.inject(f1)
	expectFrame(t, b, f1, "b")
	expectFrame(t, c, f1, "c")
	recs := readN(t, all, 3)
	if r := recs[0]; r.Port.Name != "a" || r.Dir != Inbound || r.Length != 100 || !bytes.Equal(r.Data, f1) {
		t.Fatalf("first record %s %s %d", r.Port.Name, r.Dir, r.Length)
	}
	outs := map[string]bool{}
	for _, r := range recs[1:] {
		if r.Dir != Outbound || !bytes.Equal(r.Data, f1) || r.Time.Before(recs[0].Time) {
			t.Fatalf("record %s %s", r.Port.Name, r.Dir)
		}
		outs[r.Port.Name] = true
	}
	if !outs["b"] || !outs["c"] {
		t.Fatalf("out records for %v, want b and c", outs)
	}
	if r := readN(t, onA, 1)[0]; r.Port.Name != "a" || r.Dir != Inbound {
		t.Fatalf("capture of a: %s %s", r.Port.Name, r.Dir)
	}
	expectNoRecord(t, onA)
	if r := readN(t, onB, 1)[0]; r.Port.Name != "b" || r.Dir != Outbound || r.Length != 100 || len(r.Data) != 20 {
		t.Fatalf("capture of b: %s %s len %d data %d", r.Port.Name, r.Dir, r.Length, len(r.Data))
	}

	// b answers a by unicast: in on b, out on a; c sees nothing.
	f2 := ethFrame(macA, macB, 64)
	b.inject(f2)
	expectFrame(t, a, f2, "a")
	recs = readN(t, all, 2)
	if recs[0].Port.Name != "b" || recs[0].Dir != Inbound || recs[1].Port.Name != "a" || recs[1].Dir != Outbound {
		t.Fatalf("unicast records: %s %s, %s %s", recs[0].Port.Name, recs[0].Dir, recs[1].Port.Name, recs[1].Dir)
	}
	expectNoRecord(t, all)
	if r := readN(t, onA, 1)[0]; r.Dir != Outbound || !bytes.Equal(r.Data, f2) {
		t.Fatalf("capture of a: %s", r.Dir)
	}
	if r := readN(t, onB, 1)[0]; r.Dir != Inbound || len(r.Data) != 20 || r.Length != 64 {
		t.Fatalf("capture of b: %s", r.Dir)
	}
	if s := all.Stats(); s.Frames != 5 || s.Drops != 0 || s.Bytes != 3*100+2*64 {
		t.Fatalf("stats %+v", s)
	}

	// A port attached later is captured by "all".
	d := newMemPort()
	attach(t, e, "d", d)
	d.inject(ethFrame(macA, macC, 60))
	expectFrame(t, a, ethFrame(macA, macC, 60), "a")
	if recs := readN(t, all, 2); recs[0].Port.Name != "d" || recs[0].Dir != Inbound {
		t.Fatalf("new port: %s %s", recs[0].Port.Name, recs[0].Dir)
	}

	// Close ends Read, and the last Close makes the datapath cost free again.
	for _, c := range []*Capture{onA, all, onB} {
		c.Close()
		c.Close()
		// What is buffered is still read, then io.EOF.
		buf := make([]CaptureRecord, 8)
		if n, err := c.Read(context.Background(), buf); err == nil {
			_, err = c.Read(context.Background(), buf)
			if err != io.EOF {
				t.Fatalf("read after close and %d records: %v", n, err)
			}
		} else if err != io.EOF {
			t.Fatalf("read after close: %v", err)
		}
	}
	if e.caps.Active() != nil || len(e.Captures()) != 0 {
		t.Fatal("capture list not empty after every capture closed")
	}
}

// TestCaptureDropsWhenReaderSlow: a reader that does not keep up loses
// frames, counted, while forwarding goes on untouched.
func TestCaptureDropsWhenReaderSlow(t *testing.T) {
	e := newEngine(t, Config{QueueLen: 4096})
	a, b := newMemPort(), newMemPort()
	b.out = nil
	a.gen = ethFrame(macB, macA, 1000)
	attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	c := capture(t, e, CaptureSelect{Port: "a", Buffer: frame.MaxSlotSize * 4}) // room for ~36 frames
	const n = 2000
	a.genLeft.Store(n)
	waitFor(t, func() bool { return pb.Stats().TxFrames.Load() == n }, "every frame forwarded")
	s := c.Stats()
	if s.Drops == 0 || s.Frames+s.Drops != n {
		t.Fatalf("stats %+v; want drops and frames+drops = %d", s, n)
	}
	if got := readN(t, c, int(s.Frames)); len(got) != int(s.Frames) || got[0].Length != 1000 {
		t.Fatalf("read %d records, want %d", len(got), s.Frames)
	}
	expectNoRecord(t, c)
	// Once read, the buffer takes frames again.
	a.genLeft.Store(10)
	readN(t, c, 10)
}

// TestCaptureReaderConcurrent reads while ports forward at full speed from
// several goroutines; under -race this checks the arena's hand-off.
func TestCaptureReaderConcurrent(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	a.out, b.out = nil, nil
	a.gen, b.gen = ethFrame(macB, macA, 333), ethFrame(macA, macB, 61)
	pa := attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	c := capture(t, e, CaptureSelect{Buffer: 64 << 10})
	const n = 20000
	a.genLeft.Store(n)
	b.genLeft.Store(n)
	got := 0
	buf := make([]CaptureRecord, 64)
	deadline := time.Now().Add(10 * time.Second)
	// Unpaced generators can overrun a queue: a frame is done when it was
	// written or counted as a queue_full drop.
	done := func(p *Port) bool {
		st := p.Stats()
		return st.TxFrames.Load()+st.EgressDrops[ports.DropQueueFull].Load() >= n
	}
	for !done(pa) || !done(pb) {
		if time.Now().After(deadline) {
			t.Fatal("traffic did not finish")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		k, err := c.Read(ctx, buf)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		for _, r := range buf[:k] {
			want := 333
			if (r.Port.Name == "b") == (r.Dir == Inbound) {
				want = 61
			}
			if r.Length != want || len(r.Data) != want || r.Data[0] != 0x52 {
				t.Fatalf("record %s %s: length %d data %d", r.Port.Name, r.Dir, r.Length, len(r.Data))
			}
		}
		got += k
	}
	ctx := context.Background()
	c.Close()
	for {
		k, err := c.Read(ctx, buf)
		if err == io.EOF {
			break
		}
		got += k
	}
	// Every frame read is seen once inbound, and once outbound if it was
	// written (not dropped at a full queue).
	want := 2*n + pa.Stats().TxFrames.Load() + pb.Stats().TxFrames.Load()
	if s := c.Stats(); uint64(got) != s.Frames || s.Frames+s.Drops != want {
		t.Fatalf("read %d, stats %+v, want frames+drops = %d", got, s, want)
	}
}

// TestCaptureNoAllocs: forwarding a batch allocates nothing, without a
// capture (the one atomic load) and with one running.
func TestCaptureNoAllocs(t *testing.T) {
	e := newEngine(t, Config{FDB: fdb.Config{AgingTime: -1}, Static: []StaticEntry{{MAC: macB, Port: "b"}}})
	a, b := newMemPort(), newMemPort()
	b.out = nil
	pa := attach(t, e, "a", a)
	attach(t, e, "b", b)
	fw := newForwarder(e, pa)
	fs := make([]*frame.Frame, 32)
	hdr := ethFrame(macB, macA, 64)
	sent := uint64(0)
	step := func() {
		k := e.pool.Get(fs)
		for _, f := range fs[:k] {
			f.SetLen(copy(f.Space(), hdr))
		}
		e.caps.tap(pa, fs[:k], Inbound)
		fw.forward(fs[:k], true)
		clear(fs)
		sent += uint64(k)
		for b.written.Load() < sent {
			runtime.Gosched()
		}
	}
	for range 100 {
		step()
	}
	if allocs := testing.AllocsPerRun(500, step); allocs != 0 {
		t.Fatalf("no capture: %v allocs per batch, want 0", allocs)
	}
	c := capture(t, e, CaptureSelect{Port: "all"})
	for range 100 {
		step()
	}
	if allocs := testing.AllocsPerRun(500, step); allocs != 0 {
		t.Fatalf("with a capture: %v allocs per batch, want 0", allocs)
	}
	if s := c.Stats(); s.Frames == 0 || s.Drops == 0 {
		t.Fatalf("capture stats %+v: want frames buffered, then drops (nobody reads)", s)
	}
}

// TestCloseEndsCaptures: closing the engine ends running captures, so a
// reader is never left waiting on a switch that is gone.
func TestCloseEndsCaptures(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	attach(t, e, "a", newMemPort())
	c, err := e.Capture(CaptureSelect{Port: "all"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(context.Background(), make([]CaptureRecord, 8))
		done <- err
	}()
	e.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Read after Close: %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a capture reader still waits after the engine closed")
	}
}
