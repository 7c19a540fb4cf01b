package impair

import "math/bits"

// A bucket is a token bucket kept as the time it will next be full (the
// generic cell rate algorithm), in integer nanoseconds with the remainder
// carried, so a virtual clock gets exact, repeatable departure times.
//
// A frame of cost T (its bits at the rate) may leave when the bucket holds
// T worth of tokens, i.e. when full − now ≤ burst − T; a frame larger than
// the bucket leaves when it is full. Frames leave in arrival order.
type bucket struct {
	rate  uint64 // bits/s; 0: no limit
	burst int64  // the bucket's size, as nanoseconds of sending at rate
	full  int64  // when the bucket is full again, if nothing else is sent
	frac  uint64 // full's fraction of a nanosecond, in 1/rate ns
	last  int64  // the latest departure: frames leave in order
}

// maxBurstNanos caps the bucket at about 13 days of sending, far beyond
// any useful burst, so time arithmetic cannot overflow.
const maxBurstNanos = 1 << 50

func (b *bucket) configure(rate, burstBytes uint64) {
	if rate != b.rate {
		b.frac = 0
	}
	b.rate = rate
	b.burst = 0
	if rate != 0 {
		hi, lo := bits.Mul64(burstBytes*8, 1e9)
		if hi >= rate {
			b.burst = maxBurstNanos
		} else {
			q, _ := bits.Div64(hi, lo, rate)
			b.burst = int64(min(q, maxBurstNanos))
		}
	}
}

// depart returns when a frame of size bytes arriving at now leaves the
// bucket, and takes its tokens.
func (b *bucket) depart(now int64, size int) int64 {
	if b.rate == 0 {
		return now
	}
	// size·8·1e9 fits easily: sizes are at most a slot (9216 bytes).
	ns := uint64(size) * 8e9
	cost, rem := int64(ns/b.rate), ns%b.rate
	d := max(now, b.last, b.full-max(b.burst-cost, 0))
	if b.full < d {
		b.full, b.frac = d, 0 // idle: the bucket filled up and overflowed
	}
	b.full += cost
	if b.frac += rem; b.frac >= b.rate {
		b.frac -= b.rate
		b.full++
	}
	b.last = d
	return d
}
