package capring

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// frames returns frames from a fresh pool holding the given lengths, byte i
// of frame k set to k+i.
func frames(t *testing.T, lens ...int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, len(lens))
	if n := frame.NewPool(len(lens), frame.MaxSlotSize).Get(fs); n != len(lens) {
		t.Fatalf("pool gave %d frames", n)
	}
	for k, f := range fs {
		b := f.Space()[:lens[k]]
		for i := range b {
			b[i] = byte(k + i)
		}
		f.SetLen(lens[k])
	}
	return fs
}

func readAll(t *testing.T, r *Ring[string], want int) []Record[string] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []Record[string]
	buf := make([]Record[string], 4)
	for len(out) < want {
		n, err := r.Read(ctx, buf)
		if err != nil {
			t.Fatalf("read: %v after %d of %d", err, len(out), want)
		}
		for _, rec := range buf[:n] {
			rec.Data = bytes.Clone(rec.Data)
			out = append(out, rec)
		}
	}
	return out
}

func TestDirectionString(t *testing.T) {
	for d, s := range map[Direction]string{Inbound: "in", Outbound: "out", 0: "unknown"} {
		if d.String() != s {
			t.Errorf("%d: %q, want %q", d, d.String(), s)
		}
	}
}

func TestAddReadSnap(t *testing.T) {
	r := New[string](4096, 16, 20)
	fs := frames(t, 100, 10)
	ts := time.Unix(5, 6).UnixNano()
	r.Add("a", fs[:1], Inbound, ts)
	r.Add("b", fs[1:], Outbound, ts+1)
	got := readAll(t, r, 2)
	if g := got[0]; g.Src != "a" || g.Dir != Inbound || g.Length != 100 || !bytes.Equal(g.Data, fs[0].Bytes()[:20]) || !g.Time.Equal(time.Unix(5, 6)) {
		t.Errorf("rec 0: %+v", g)
	}
	if g := got[1]; g.Src != "b" || g.Dir != Outbound || g.Length != 10 || !bytes.Equal(g.Data, fs[1].Bytes()) || g.Time.UnixNano() != ts+1 {
		t.Errorf("rec 1: %+v", g)
	}
	if s := r.Stats(); s != (Stats{Frames: 2, Bytes: 30}) {
		t.Errorf("stats %+v", s)
	}
}

func TestDefaultSnapIsWholeFrame(t *testing.T) {
	r := New[int](1<<16, 16, 0)
	fs := frames(t, frame.MaxSlotSize)
	r.Add(1, fs, Inbound, 0)
	n, err := r.Read(context.Background(), make([]Record[int], 1))
	if n != 1 || err != nil {
		t.Fatalf("read: %d %v", n, err)
	}
	if s := r.Stats(); s.Bytes != frame.MaxSlotSize {
		t.Errorf("stats %+v", s)
	}
}

// TestDropsWhenFull: by record count and by arena bytes; lent records stay
// in use until the next Read.
func TestDropsWhenFull(t *testing.T) {
	r := New[string](1024, 2, 0)
	r.Add("x", frames(t, 8, 8, 8), Inbound, 0)
	if s := r.Stats(); s.Frames != 2 || s.Drops != 1 {
		t.Fatalf("by records: %+v", s)
	}
	var buf [2]Record[string]
	if n, _ := r.Read(context.Background(), buf[:]); n != 2 {
		t.Fatalf("read %d", n)
	}
	r.Add("x", frames(t, 8), Inbound, 0) // the two lent records are still held
	if s := r.Stats(); s.Frames != 2 || s.Drops != 2 {
		t.Fatalf("while lent: %+v", s)
	}

	b := New[string](256, 64, 0)
	b.Add("x", frames(t, 100, 100, 100), Inbound, 0) // 104+104 fit, not a third
	if s := b.Stats(); s.Frames != 2 || s.Drops != 1 || s.Bytes != 200 {
		t.Fatalf("by bytes: %+v", s)
	}
}

// TestWrap: records that do not fit before the arena's end start at 0;
// (records+1)*slot bytes always hold records full-size frames, here one
// lent to the reader and one buffered.
func TestWrap(t *testing.T) {
	const slot = 128
	r := New[int](3*slot, 2, slot)
	lens := []int{20, 127, 127, 5, 127, 127, 64, 127, 1, 127, 100, 127}
	var buf [1]Record[int]
	for i := range 3 * len(lens) {
		fs := frames(t, lens[i%len(lens)])
		r.Add(i, fs, Outbound, 0)
		n, err := r.Read(context.Background(), buf[:])
		if n != 1 || err != nil {
			t.Fatalf("step %d: read %d %v, stats %+v", i, n, err, r.Stats())
		}
		if buf[0].Src != i || !bytes.Equal(buf[0].Data, fs[0].Bytes()) {
			t.Fatalf("step %d: %+v", i, buf[0])
		}
	}
	if s := r.Stats(); s.Drops != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCloseAndContext(t *testing.T) {
	r := New[string](1024, 8, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n, err := r.Read(ctx, make([]Record[string], 1)); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("empty read: %d %v", n, err)
	}
	if n, err := r.Read(context.Background(), nil); n != 0 || err != nil {
		t.Fatalf("read into nothing: %d %v", n, err)
	}
	r.Add("a", frames(t, 10, 10), Inbound, 0)
	if !r.Close() || r.Close() {
		t.Fatal("Close: want true once, then false")
	}
	r.Add("a", frames(t, 10), Inbound, 0)
	if s := r.Stats(); s.Frames != 2 || s.Drops != 0 {
		t.Fatalf("add after close: %+v", s)
	}
	if n, err := r.Read(context.Background(), make([]Record[string], 8)); n != 2 || err != nil {
		t.Fatalf("buffered read after close: %d %v", n, err)
	}
	if _, err := r.Read(context.Background(), make([]Record[string], 8)); err != io.EOF {
		t.Fatalf("read after close: %v", err)
	}
}

// TestCloseWakesReader: a reader waiting on an empty ring gets io.EOF.
func TestCloseWakesReader(t *testing.T) {
	r := New[string](1024, 8, 0)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(context.Background(), make([]Record[string], 1))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r.Close()
	if err := <-errc; err != io.EOF {
		t.Fatalf("waiting reader: %v", err)
	}
}

// TestConcurrent: writers and one reader; every frame is read or dropped.
func TestConcurrent(t *testing.T) {
	r := New[int](4096, 16, 0)
	const writers, per = 4, 500
	var wg sync.WaitGroup
	for w := range writers {
		fs := frames(t, 60)
		wg.Go(func() {
			for range per {
				r.Add(w, fs, Inbound, time.Now().UnixNano())
			}
		})
	}
	done := make(chan int)
	go func() {
		got := 0
		buf := make([]Record[int], 8)
		for {
			n, err := r.Read(context.Background(), buf)
			for _, rec := range buf[:n] {
				if len(rec.Data) != 60 || rec.Data[1] != 1 {
					t.Errorf("record %+v", rec)
				}
			}
			got += n
			if err == io.EOF {
				done <- got
				return
			}
		}
	}()
	wg.Wait()
	r.Close()
	got := <-done
	if s := r.Stats(); uint64(got) != s.Frames || s.Frames+s.Drops != writers*per {
		t.Fatalf("read %d, stats %+v", got, s)
	}
}

func TestAddNoAllocs(t *testing.T) {
	r := New[string](1<<16, 64, 0)
	fs := frames(t, 60, 60, 60, 60)
	buf := make([]Record[string], 8)
	if allocs := testing.AllocsPerRun(200, func() {
		r.Add("a", fs, Inbound, 1)
		r.Read(context.Background(), buf)
	}); allocs != 0 {
		t.Fatalf("%v allocs per add and read, want 0", allocs)
	}
}
