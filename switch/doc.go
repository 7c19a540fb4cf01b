// Package engine forwards frames between attached ports like an IEEE 802.1D
// learning bridge. (Its directory is switch/; "switch" is a Go keyword.)
//
// # Datapath
//
// Every port has one ingress goroutine and one egress goroutine. The ingress
// goroutine takes a batch of pooled frames, lets the port fill them
// (ReadFrames), learns each source MAC, looks up each destination and
// appends a reference to the frame to a per-egress batch. A frame for several
// ports is shared by reference count, never copied. Finished batches go to
// each egress port's queue with a non-blocking send: a full queue drops the
// batch and counts it (queue_full), so a slow or stuck port only ever backs
// up its own queue. The egress goroutine writes whole batches with
// WriteFrames and returns the frames to the pool after their last reference.
//
// Nothing on this path allocates, takes a lock shared by all ports, logs, or
// calls into metrics: counters are atomics added once per batch.
//
// # Port table
//
// The set of ports is an immutable snapshot behind an atomic pointer, loaded
// once per batch. Detach publishes a new snapshot, then waits until every
// ingress goroutine has finished the batch it was forwarding (a grace period,
// as in RCU), after which nobody can still send to the detached port's queue.
package engine
