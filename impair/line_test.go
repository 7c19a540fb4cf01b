package impair

import (
	"math"
	"math/bits"
	"slices"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
)

const ms = int64(time.Millisecond)

func TestPassThrough(t *testing.T) {
	r := newRig(t, Config{}, 64)
	if !r.line.Idle() {
		t.Fatal("a zero line is not idle")
	}
	var got []uint32
	for i := range 100 {
		if v := r.push(int64(i)); v != Held {
			t.Fatalf("verdict %v", v)
		}
		r.due(int64(i), func(f *frame.Frame) { got = append(got, seqOf(f)) })
	}
	if len(got) != 100 || !slices.IsSorted(got) || r.line.Len() != 0 || r.inUse() != 0 {
		t.Fatalf("got %d frames (sorted %v), held %d, in use %d", len(got), slices.IsSorted(got), r.line.Len(), r.inUse())
	}
}

func TestLossRate(t *testing.T) {
	const frames = 100_000
	r := newRig(t, Config{Loss: 0.10, Seed: 42}, 64)
	lost := 0
	for i := range frames {
		if r.push(int64(i)) == Lost {
			lost++
		}
		r.due(int64(i), nil)
	}
	if lost < 9_000 || lost > 11_000 {
		t.Fatalf("lost %d of %d at 10 %%", lost, frames)
	}
	if s := r.line.Stats(); s.Lost != uint64(lost) || s.In != frames {
		t.Fatalf("stats %+v, counted %d lost", s, lost)
	}
}

// burstStats pushes frames and returns the share lost and the mean length
// of runs of consecutive losses.
func burstStats(t *testing.T, cfg Config, frames int) (loss, meanBurst float64) {
	r := newRig(t, cfg, 64)
	lost, bursts, run := 0, 0, 0
	for range frames {
		if r.push(0) == Lost {
			lost++
			if run == 0 {
				bursts++
			}
			run++
		} else {
			run = 0
		}
		r.due(0, nil)
	}
	return float64(lost) / float64(frames), float64(lost) / float64(bursts)
}

func TestGilbertElliott(t *testing.T) {
	const p, r = 0.01, 0.20
	loss, burst := burstStats(t, Config{GEP: p, GER: r, Seed: 7}, 1_000_000)
	if want := p / (p + r); math.Abs(loss-want) > 0.003 {
		t.Errorf("stationary loss %.4f, want p/(p+r) = %.4f", loss, want)
	}
	if want := 1 / r; math.Abs(burst-want)/want > 0.05 {
		t.Errorf("mean burst %.3f, want 1/r = %.3f", burst, want)
	}

	// loss= with loss-burst= is the same model, set by its outcome.
	loss, burst = burstStats(t, Config{Loss: 0.05, LossBurst: 4, Seed: 7}, 1_000_000)
	if math.Abs(loss-0.05) > 0.003 || math.Abs(burst-4)/4 > 0.05 {
		t.Errorf("loss=5%% loss-burst=4: loss %.4f, mean burst %.3f", loss, burst)
	}

	// Independent losses at 20 % have runs of 1/(1−0.2) = 1.25 frames.
	loss, burst = burstStats(t, Config{Loss: 0.2, Seed: 7}, 200_000)
	if math.Abs(loss-0.2) > 0.01 || math.Abs(burst-1.25) > 0.03 {
		t.Errorf("random loss: loss %.4f, mean burst %.3f", loss, burst)
	}

	// Loss in the good state, partial loss in the bad one.
	const good, bad = 0.01, 0.5
	loss, _ = burstStats(t, Config{GEP: p, GER: r, GEGood: good, GEBad: bad, Seed: 7}, 1_000_000)
	if want := (r*good + p*bad) / (p + r); math.Abs(loss-want) > 0.003 {
		t.Errorf("ge-good/ge-bad: loss %.4f, want %.4f", loss, want)
	}
}

func TestDuplicateRate(t *testing.T) {
	const frames = 100_000
	r := newRig(t, Config{Duplicate: 0.05, Seed: 1}, 64)
	dups, out := 0, 0
	for i := range frames {
		if r.push(int64(i)) == Duplicated {
			dups++
		}
		out += r.due(int64(i), nil)
	}
	if dups < 4_500 || dups > 5_500 || out != frames+dups {
		t.Fatalf("%d duplicates at 5 %%, %d frames out of %d", dups, out, frames)
	}
	if r.line.Stats().Duplicated != uint64(dups) || r.inUse() != 0 {
		t.Fatalf("stats %+v, in use %d", r.line.Stats(), r.inUse())
	}
}

// TestCorrupt checks the rate, that exactly one bit flips and never in the
// header, and that a shared frame is copied, never changed in place.
func TestCorrupt(t *testing.T) {
	const frames = 100_000
	for _, shared := range []bool{false, true} {
		r := newRig(t, Config{Corrupt: 0.02, Seed: 3}, 64)
		corrupted := 0
		for i := range frames {
			f := r.newFrame()
			if shared {
				f.Retain(1) // another holder, as when a frame floods
			}
			r.line.Push(f, int64(i))
			r.due(int64(i), func(g *frame.Frame) {
				b := g.Bytes()
				flipped := 0
				for j, c := range b {
					want := byte(0)
					if j >= 6 && j < 10 {
						want = byte(uint32(i) >> (8 * (9 - j)))
					}
					flipped += bits.OnesCount8(c ^ want)
					if c != want && j < DefaultCorruptFrom {
						t.Fatalf("byte %d of the header changed", j)
					}
				}
				if flipped > 1 {
					t.Fatalf("%d bits flipped", flipped)
				}
				corrupted += flipped
				if shared && flipped == 1 && g == f {
					t.Fatal("a shared frame was corrupted in place")
				}
			})
			if shared {
				if seqOf(f) != uint32(i) || f.Bytes()[20] != 0 {
					t.Fatal("the other holder's frame changed")
				}
				f.Free()
			}
		}
		if corrupted < 1_800 || corrupted > 2_200 {
			t.Errorf("shared %v: %d corrupted at 2 %%", shared, corrupted)
		}
		if s := r.line.Stats(); s.Corrupted != uint64(corrupted) || s.CorruptSkipped != 0 || r.inUse() != 0 {
			t.Errorf("shared %v: stats %+v, in use %d", shared, s, r.inUse())
		}
	}
}

// TestCorruptSkipped: a shared frame whose pool has no free slot, and a
// frame with nothing after CorruptFrom, go out intact and are counted.
func TestCorruptSkipped(t *testing.T) {
	l, _ := NewLine(Config{Corrupt: 1})
	pool := frame.NewPool(1, 64)
	fs := make([]*frame.Frame, 1)
	pool.Get(fs)
	f := fs[0]
	f.SetLen(64)
	f.Retain(1)
	if l.Push(f, 0) != Held {
		t.Fatal("not held")
	}
	g := l.Due(0, fs[:0])[0]
	if g != f || f.Bytes()[30] != 0 || l.Stats().CorruptSkipped != 1 {
		t.Fatalf("stats %+v", l.Stats())
	}
	f.Free()
	f.SetLen(10) // all header
	l.Push(f, 0)
	l.Due(0, fs[:0])
	if s := l.Stats(); s.CorruptSkipped != 2 || s.Corrupted != 0 {
		t.Fatalf("stats %+v", s)
	}

	// With NoHeader, byte 0 can flip too.
	l, _ = NewLine(Config{Corrupt: 1, CorruptFrom: NoHeader, Seed: 5})
	seen := map[int]bool{}
	for range 2000 {
		f.SetLen(2)
		clear(f.Bytes())
		l.Push(f, 0)
		l.Due(0, fs[:0])
		for j, c := range f.Bytes() {
			if c != 0 {
				seen[j] = true
			}
		}
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("bytes flipped: %v", seen)
	}
	f.Free()
}

func TestReorder(t *testing.T) {
	const frames = 100_000
	r := newRig(t, Config{Delay: 10 * time.Millisecond, Reorder: 0.25, Seed: 9}, 64)
	var got []uint32
	for i := range frames {
		now := int64(i) * ms / 10 // 10 frames per millisecond
		r.push(now)
		r.due(now, func(f *frame.Frame) { got = append(got, seqOf(f)) })
	}
	r.due(math.MaxInt64, func(f *frame.Frame) { got = append(got, seqOf(f)) })
	reordered := r.line.Stats().Reordered
	if reordered < 24_000 || reordered > 26_000 {
		t.Fatalf("%d reordered at 25 %%", reordered)
	}
	// A frame is out of order when one pushed later came out before it.
	ahead := 0
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			ahead++
		}
	}
	if len(got) != frames || ahead == 0 {
		t.Fatalf("%d frames out, %d after a later one", len(got), ahead)
	}
}

// TestReorderedSkipDelay: a reordered frame is due at once.
func TestReorderedSkipDelay(t *testing.T) {
	l, _ := NewLine(Config{Delay: time.Second, Reorder: 1})
	r := newRig(t, Config{}, 64)
	l.Push(r.newFrame(), 5)
	if due, _ := l.Next(); due != 5 {
		t.Fatalf("due %d, want 5", due)
	}
}

// TestRate: offered 200 frames/s, a 1 Mbit/s link carries 125 frames of
// 1000 bytes per virtual second; the queue limit drops the rest, counted
// exactly.
func TestRate(t *testing.T) {
	for _, burst := range []uint64{0, 32 << 10} {
		r := newRig(t, Config{Rate: 1e6, Burst: burst, Limit: 100}, 1000)
		perSecond := make([]int, 20)
		pushed, over := 0, 0
		for now := int64(0); now < 20*int64(time.Second); now += 5 * ms {
			if r.push(now) == Overflowed {
				over++
			}
			pushed++
			r.due(now, func(*frame.Frame) { perSecond[now/int64(time.Second)]++ })
		}
		for s, n := range perSecond {
			want := 125 // 1e6 bit/s ÷ 8000 bits
			if s == 0 {
				want += int(burst / 1000) // the bucket starts full
			}
			if n < want-1 || n > want+1 {
				t.Errorf("burst %d: second %d carried %d frames, want %d", burst, s, n, want)
			}
		}
		delivered := 0
		for _, n := range perSecond {
			delivered += n
		}
		if st := r.line.Stats(); uint64(over) != st.Overflowed || pushed != delivered+over+r.line.Len() {
			t.Errorf("burst %d: pushed %d = delivered %d + overflowed %d + held %d?", burst, pushed, delivered, over, r.line.Len())
		}
	}
}

// TestLimitExact: at one instant, everything past the limit overflows.
func TestLimitExact(t *testing.T) {
	r := newRig(t, Config{Delay: time.Second, Limit: 100}, 64)
	over := 0
	for range 150 {
		if r.push(0) == Overflowed {
			over++
		}
	}
	if over != 50 || r.line.Len() != 100 || r.line.Stats().Held != 100 {
		t.Fatalf("%d overflowed, %d held", over, r.line.Len())
	}
	if n := r.due(int64(time.Second), nil); n != 100 || r.inUse() != 0 {
		t.Fatalf("%d due, %d in use", n, r.inUse())
	}
}

// TestBucketExact: with burst 0 a 1500-byte frame at 1 Mbit/s leaves every
// 12 ms; a full 4500-byte bucket lets three go at once.
func TestBucketExact(t *testing.T) {
	var b bucket
	b.configure(1e6, 0)
	for i := range int64(5) {
		if d := b.depart(0, 1500); d != i*12*ms {
			t.Fatalf("frame %d departs at %d", i, d)
		}
	}
	b = bucket{}
	b.configure(1e6, 4500)
	for i, want := range []int64{0, 0, 0, 12 * ms, 24 * ms} {
		if d := b.depart(0, 1500); d != want {
			t.Fatalf("burst: frame %d departs at %d, want %d", i, d, want)
		}
	}
	// Fractions of a nanosecond add up: a byte at 3 Gbit/s takes 8/3 ns.
	b = bucket{}
	b.configure(3e9, 0)
	var d int64
	for range 3000 {
		d = b.depart(0, 1)
	}
	if d != 7997 { // 2999 frames of 8/3 ns before the last
		t.Fatalf("3000th byte departs at %d, want 7997", d)
	}
}

func TestDelayDistribution(t *testing.T) {
	const frames = 100_000
	for _, tc := range []struct {
		dist   Dist
		stddev float64 // of the delay, ms
	}{{Uniform, 5 / math.Sqrt(3)}, {Normal, 5}} {
		r := newRig(t, Config{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond, Dist: tc.dist, Seed: 11}, 64)
		var sum, sq float64
		for i := range frames {
			now := int64(i) * ms
			r.push(now)
			due, _ := r.line.Next() // the only frame held
			d := float64(due-now) / float64(ms)
			sum += d
			sq += d * d
			for _, f := range r.line.Flush(r.out[:0]) {
				f.Free()
			}
		}
		mean := sum / frames
		sd := math.Sqrt(sq/frames - mean*mean)
		if math.Abs(mean-50) > 0.1 || math.Abs(sd-tc.stddev)/tc.stddev > 0.03 {
			t.Errorf("%v: delay %.3f ms ± %.3f, want 50 ± %.3f", tc.dist, mean, sd, tc.stddev)
		}
	}
}

// TestDelayNeverNegative: jitter larger than the delay clips at 0.
func TestDelayNeverNegative(t *testing.T) {
	r := newRig(t, Config{Delay: time.Millisecond, Jitter: 10 * time.Millisecond, Dist: Normal, Seed: 2}, 64)
	for i := range 10_000 {
		now := int64(i) * ms
		r.push(now)
		if due, _ := r.line.Next(); due < now {
			t.Fatalf("due %d before now %d", due, now)
		}
		r.due(math.MaxInt64, nil)
	}
}
