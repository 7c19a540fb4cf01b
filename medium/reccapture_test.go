package medium

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestCaptureRecords captures one node in both directions, every node, and
// checks drops when the reader falls behind.
func TestCaptureRecords(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	pa, pb := newMemPort(), newMemPort()
	attach(t, m, "a", pa)
	attach(t, m, "b", pb)

	if _, err := m.CaptureRecords("nope", 0); !errors.Is(err, ErrNoNode) {
		t.Fatalf("capture nope: %v", err)
	}
	ca, err := m.CaptureRecords("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := m.CaptureRecords("all", 0)
	if err != nil {
		t.Fatal(err)
	}
	small, err := m.CaptureRecords("b", 2*SlotSize)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.RecCaptures()); n != 3 {
		t.Fatalf("%d captures, want 3", n)
	}
	f1, f2 := psdu(1, 20), psdu(2, 127)
	pa.inject(f1)
	waitFor(t, "b receives", func() bool { return pb.n.Load() == 1 })
	pb.inject(f2)
	waitFor(t, "a receives", func() bool { return pa.n.Load() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	read := func(c *RecCapture, want int) []Record {
		t.Helper()
		var out []Record
		buf := make([]Record, 8)
		for len(out) < want {
			n, err := c.Read(ctx, buf)
			if err != nil {
				t.Fatalf("read %s: %v", c.Selection(), err)
			}
			for _, r := range buf[:n] {
				r.Data = bytes.Clone(r.Data)
				out = append(out, r)
			}
		}
		return out
	}
	got := read(ca, 2)
	if got[0].Node != "a" || got[0].Dir != Inbound || !bytes.Equal(got[0].Data, f1) || got[0].Length != len(f1) {
		t.Errorf("a[0]: %+v", got[0])
	}
	if got[1].Node != "a" || got[1].Dir != Outbound || !bytes.Equal(got[1].Data, f2) {
		t.Errorf("a[1]: %+v", got[1])
	}
	if got := read(all, 4); len(got) != 4 {
		t.Errorf("all: %d records", len(got))
	}
	if s := ca.Stats(); s.Frames != 2 || s.Bytes != uint64(len(f1)+len(f2)) || s.Drops != 0 {
		t.Errorf("a stats: %+v", s)
	}

	// small holds two frames: b's two, then drops.
	pa.inject(psdu(3, 10))
	waitFor(t, "b receives 2", func() bool { return pb.n.Load() == 2 })
	if s := small.Stats(); s.Frames != 2 || s.Drops != 1 {
		t.Errorf("small stats: %+v", s)
	}

	ca.Close()
	all.Close()
	if n, err := ca.Read(ctx, make([]Record, 8)); n != 1 || err != nil { // frame 3, buffered before Close
		t.Errorf("buffered read after close: %d %v", n, err)
	}
	if _, err := ca.Read(ctx, make([]Record, 1)); err != io.EOF {
		t.Errorf("read after close: %v", err)
	}
	m.Close()
	if _, err := small.Read(ctx, make([]Record, 4)); err != nil {
		t.Errorf("buffered read after medium close: %v", err)
	}
	if _, err := small.Read(ctx, make([]Record, 4)); err != io.EOF {
		t.Errorf("read after medium close: %v", err)
	}
	if n := len(m.RecCaptures()); n != 0 {
		t.Errorf("%d captures left", n)
	}
}
