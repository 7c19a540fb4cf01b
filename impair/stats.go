package impair

import "sync/atomic"

// Stats is a snapshot of a line's counters.
type Stats struct {
	In         uint64 // frames pushed
	Lost       uint64 // frames lost (loss or Gilbert–Elliott)
	Overflowed uint64 // frames dropped at the queue limit
	Duplicated uint64 // extra copies made
	Corrupted  uint64 // frames with a flipped bit
	// CorruptSkipped counts frames chosen for corruption but delivered
	// intact: the frame was shared and the pool had no slot for a private
	// copy, or it had no byte at or after CorruptFrom.
	CorruptSkipped uint64
	Reordered      uint64 // frames that skipped the delay
	Held           int64  // frames held now: delayed or waiting for the rate
}

// counters are a line's live counters: written by the line's user, read by
// anyone (metrics) through Stats.
type counters struct {
	in, lost, overflowed, duplicated     atomic.Uint64
	corrupted, corruptSkipped, reordered atomic.Uint64
	held                                 atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		In: c.in.Load(), Lost: c.lost.Load(), Overflowed: c.overflowed.Load(),
		Duplicated: c.duplicated.Load(), Corrupted: c.corrupted.Load(),
		CorruptSkipped: c.corruptSkipped.Load(), Reordered: c.reordered.Load(),
		Held: c.held.Load(),
	}
}
