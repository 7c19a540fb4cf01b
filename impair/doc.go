// Package impair models one direction of an impaired link, as Linux's
// netem does, but inside zswitch: delay with jitter, random and bursty
// (Gilbert–Elliott) loss, duplication, reordering, corruption and a rate
// limit with a queue limit.
//
// A [Config] says what to do; [Parse] and [Config.Set] read it from the
// key=value form of port specs and the control API. A [Line] applies a
// Config to frames: Push hands it a frame, Due hands back the frames whose
// time has come. The caller owns the clock: every call takes "now" in
// nanoseconds of a monotonic clock, so tests run on a virtual one.
//
// # Determinism
//
// Every decision is drawn from seeded PCG streams, one per kind of
// decision (loss, duplication, corruption, reordering, delay), advanced
// only by Push. The same Config and the same sequence of pushed frames
// lose, duplicate, corrupt and reorder the same frames, flip the same bits
// and draw the same delays, whatever the wall clock does. Separate streams
// also mean that turning duplication on does not change which frames are
// lost.
//
// # Order of decisions
//
// Push decides, per frame and in this order:
//
//  1. loss: a lost frame goes no further;
//  2. the queue limit: a frame that would make the line hold more than
//     Limit frames is dropped (the caller counts it as rate_limit);
//  3. duplication: the line keeps a second reference and schedules it too,
//     unless that would exceed the limit;
//  4. corruption: one random bit at or after CorruptFrom flips in one copy
//     (the duplicate, if any, stays intact, as in netem);
//  5. rate: every copy waits for the token bucket, in arrival order;
//  6. delay: then Delay plus jitter, except for reordered frames, which
//     skip the delay (not the rate limit) and so overtake frames pushed
//     before them. Jitter alone can reorder too, as it does in netem.
package impair
