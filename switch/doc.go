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
// up its own queue; a port with backpressure makes its senders wait for
// room instead, for a bounded time (backpressure.go). The egress goroutine
// writes whole batches with WriteFrames and returns the frames to the pool
// after their last reference.
//
// Direct writes: when the egress port's queue is empty, its writer idle
// (a TryLock on its writer lock) and its port a ports.TryWriter, the
// ingress goroutine writes the batch itself, without waiting
// (TryWriteFrames), and queues only what the endpoint did not take. That
// saves a goroutine handoff, and on a multi-core host the wake-up of
// another thread, per hop (a ping-pong's round trip: a third less). Order
// per source, capture, VLAN tagging, counters and latency are as on the
// queued path (forwarder.direct).
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
