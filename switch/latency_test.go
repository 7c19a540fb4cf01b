package engine

import (
	"testing"
	"time"
)

func TestLatencyBuckets(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {-time.Second, 0}, {time.Microsecond, 0}, {1500 * time.Nanosecond, 1},
		{2 * time.Microsecond, 1}, {3 * time.Microsecond, 2}, {4 * time.Microsecond, 2},
		{time.Millisecond, 10}, {time.Second, 20}, {time.Hour, LatencyBuckets - 1},
	} {
		var l Latency
		l.observe(tc.d)
		s := l.Snapshot()
		if s.Buckets[tc.want] != 1 || s.Count != 1 {
			t.Errorf("%v: buckets %v, want bucket %d", tc.d, s.Buckets, tc.want)
		}
		if tc.want < LatencyBuckets-1 && tc.d > BucketBound(tc.want) {
			t.Errorf("%v lands above its bucket's bound %v", tc.d, BucketBound(tc.want))
		}
	}
}

// TestLatencyRecorded: forwarded frames show up in the egress port's
// histogram, with plausible values.
func TestLatencyRecorded(t *testing.T) {
	e := newEngine(t, Config{})
	a, b := newMemPort(), newMemPort()
	attach(t, e, "a", a)
	pb := attach(t, e, "b", b)
	for range 10 {
		a.inject(ethFrame(bcast, macA, 60))
		expectFrame(t, b, ethFrame(bcast, macA, 60), "b")
	}
	s := pb.Latency()
	if s.Count == 0 || s.Count > 10 {
		t.Fatalf("%d latency samples for 10 frames", s.Count)
	}
	if s.Sum <= 0 || s.Sum > time.Duration(s.Count)*time.Second {
		t.Fatalf("latency sum %v over %d samples", s.Sum, s.Count)
	}
}
