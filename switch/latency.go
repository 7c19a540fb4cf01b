package engine

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// epoch anchors the monotonic timestamps batches carry: time.Since reads
// the monotonic clock, so a wall-clock step never shows as latency.
var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) }

// LatencyBuckets is how many histogram buckets a Latency has. Bucket i
// counts forwarding delays up to 1µs·2^i (the last one: everything).
const LatencyBuckets = 24

// A Latency is a histogram of how long frames took from leaving ReadFrames
// on their ingress port to being handed to WriteFrames on this port (queue
// wait included), or to TryWriteFrames for a direct write. It is sampled
// once per write, with the oldest frame of that write, so it costs two
// clock reads per up to 256 frames.
type Latency struct {
	buckets [LatencyBuckets]atomic.Uint64
	sumNs   atomic.Uint64
	count   atomic.Uint64
}

func (l *Latency) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	if d > time.Microsecond {
		i = bits.Len64(uint64((d - 1) / time.Microsecond)) // smallest i with d <= 1µs·2^i
	}
	l.buckets[min(i, LatencyBuckets-1)].Add(1)
	l.sumNs.Add(uint64(d))
	l.count.Add(1)
}

// LatencySnapshot is a Latency read at one moment, for metrics.
type LatencySnapshot struct {
	// Buckets[i] counts samples up to BucketBound(i); not cumulative.
	Buckets [LatencyBuckets]uint64
	Sum     time.Duration
	Count   uint64
}

// BucketBound is the upper bound of bucket i (the last one is +Inf).
func BucketBound(i int) time.Duration { return time.Microsecond << i }

// Snapshot reads the histogram.
func (l *Latency) Snapshot() LatencySnapshot {
	var s LatencySnapshot
	for i := range s.Buckets {
		s.Buckets[i] = l.buckets[i].Load()
	}
	s.Sum = time.Duration(l.sumNs.Load())
	s.Count = l.count.Load()
	return s
}
