package impair

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestScheduleOrder checks the ring-plus-heap against a sort, with pushes
// and pops interleaved so the ring wraps and grows.
func TestScheduleOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, spread := range []int64{0, 3, 1000} { // 0: in order, all in the ring
		var s schedule
		var ref []entry
		var got, want []entry
		seq := uint64(0)
		now := int64(0)
		for range 20_000 {
			now += rng.Int64N(5)
			for range rng.IntN(4) {
				seq++
				e := entry{due: now + 100, seq: seq}
				if spread > 0 {
					e.due += rng.Int64N(2*spread) - spread
				}
				s.push(e)
				ref = append(ref, e)
			}
			slices.SortStableFunc(ref, func(a, b entry) int { return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.seq, b.seq)) })
			for s.len() > 0 && s.first().due <= now {
				got = append(got, s.pop())
			}
			for len(ref) > 0 && ref[0].due <= now {
				want = append(want, ref[0])
				ref = ref[1:]
			}
		}
		if !slices.Equal(got, want) || s.len() != len(ref) {
			t.Fatalf("spread %d: order differs from a sort (%d vs %d out)", spread, len(got), len(want))
		}
	}
}
