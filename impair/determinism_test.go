package impair

import (
	"hash/fnv"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// everything turns every impairment on at once.
var everything = Config{
	Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Dist: Normal,
	GEP: 0.02, GER: 0.3, Duplicate: 0.05, Reorder: 0.1, Corrupt: 0.05,
	Rate: 50e6, Burst: 16 << 10, Limit: 200,
}

// An event is one frame leaving the line: which, when and what it holds.
type event struct {
	seq  uint32
	at   int64
	hash uint64
}

// run pushes frames on a virtual clock and records, per push, the verdict
// and, per frame out, its event.
func run(t *testing.T, cfg Config, frames int) ([]Verdict, []event) {
	r := newRig(t, cfg, 200)
	var verdicts []Verdict
	var events []event
	record := func(now int64) func(f *frame.Frame) {
		return func(f *frame.Frame) {
			h := fnv.New64a()
			h.Write(f.Bytes())
			events = append(events, event{seqOf(f), now, h.Sum64()})
		}
	}
	for i := range frames {
		now := int64(i) * 20_000 // 50 000 frames/s: the rate limit bites
		verdicts = append(verdicts, r.push(now))
		r.due(now, record(now))
	}
	r.due(math.MaxInt64, record(math.MaxInt64))
	if r.inUse() != 0 {
		t.Fatalf("%d slots still in use", r.inUse())
	}
	return verdicts, events
}

func TestSameSeedSameRun(t *testing.T) {
	cfg := everything
	cfg.Seed = 42
	v1, e1 := run(t, cfg, 20_000)
	v2, e2 := run(t, cfg, 20_000)
	if !slices.Equal(v1, v2) || !slices.Equal(e1, e2) {
		t.Fatal("the same seed gave another run")
	}
	cfg.Seed = 43
	v3, e3 := run(t, cfg, 20_000)
	if slices.Equal(v1, v3) || slices.Equal(e1, e3) {
		t.Fatal("another seed gave the same run")
	}
	// Every kind of verdict happened, so the run tested something.
	for _, v := range []Verdict{Held, Duplicated, Lost, Overflowed} {
		if !slices.Contains(v1, v) {
			t.Errorf("no frame was %v", v)
		}
	}
}

// TestEveryFrameOnce: each pushed frame comes out or is dropped, duplicates
// come out once more, and every slot returns to the pool.
func TestEveryFrameOnce(t *testing.T) {
	cfg := everything
	cfg.Seed = 5
	verdicts, events := run(t, cfg, 50_000)
	var dropped, dups int
	for _, v := range verdicts {
		switch v {
		case Lost, Overflowed:
			dropped++
		case Duplicated:
			dups++
		}
	}
	if len(events) != len(verdicts)-dropped+dups {
		t.Fatalf("%d out; %d pushed − %d dropped + %d duplicates", len(events), len(verdicts), dropped, dups)
	}
	times := map[uint32]int{}
	for _, e := range events {
		times[e.seq]++
	}
	for i, v := range verdicts {
		want := map[Verdict]int{Held: 1, Duplicated: 2}[v]
		if times[uint32(i)] != want {
			t.Fatalf("frame %d (%v) came out %d times", i, v, times[uint32(i)])
		}
	}
}

// TestFlush hands back everything held, and the pool is whole again.
func TestFlush(t *testing.T) {
	cfg := everything
	r := newRig(t, cfg, 200)
	for i := range 1000 {
		r.push(int64(i))
	}
	held := r.line.Len()
	out := r.line.Flush(nil)
	if len(out) != held || r.line.Len() != 0 || r.line.Stats().Held != 0 {
		t.Fatalf("flushed %d of %d", len(out), held)
	}
	for _, f := range out {
		f.Free()
	}
	if r.inUse() != 0 {
		t.Fatalf("%d slots in use", r.inUse())
	}
}

// TestSetConfig: held frames keep their due times, and the same seed does
// not restart the streams: adding duplication midway loses the same
// frames as a line that never changed.
func TestSetConfig(t *testing.T) {
	r := newRig(t, Config{Delay: time.Second}, 64)
	r.push(0)
	if err := r.line.SetConfig(Config{}); err != nil {
		t.Fatal(err)
	}
	r.push(10)
	var got []uint32
	r.due(10, func(f *frame.Frame) { got = append(got, seqOf(f)) })
	if next, _ := r.line.Next(); !slices.Equal(got, []uint32{1}) || next != int64(time.Second) {
		t.Fatalf("after SetConfig got %v, next due %d", got, next)
	}
	if err := r.line.SetConfig(Config{Reorder: 0.5}); err == nil {
		t.Fatal("SetConfig accepted an invalid config")
	}

	lossPattern := func(change bool) []bool {
		r := newRig(t, Config{Loss: 0.3, Seed: 8}, 64)
		var lost []bool
		for i := range 2000 {
			if change && i == 1000 {
				r.line.SetConfig(Config{Loss: 0.3, Seed: 8, Duplicate: 0.5, Delay: time.Millisecond})
			}
			lost = append(lost, r.push(int64(i)) == Lost)
			r.due(int64(i), nil)
		}
		return lost
	}
	if !slices.Equal(lossPattern(false), lossPattern(true)) {
		t.Fatal("changing the config changed which frames were lost")
	}
}

// TestAllocs: Push and Due allocate nothing in steady state, with every
// impairment on (corruption of shared frames included).
func TestAllocs(t *testing.T) {
	cfg := everything
	r := newRig(t, cfg, 200)
	now := int64(0)
	step := func() {
		now += 20_000
		f := r.newFrame()
		f.Retain(1)
		if r.line.Push(f, now).Dropped() {
			f.Free()
		}
		f.Free()
		r.due(now, nil)
	}
	for range 50_000 { // warm up: the schedule and the pool reach their size
		step()
	}
	if a := testing.AllocsPerRun(10_000, step); a != 0 {
		t.Fatalf("%v allocations per Push+Due", a)
	}
}
