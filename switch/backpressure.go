package engine

import "time"

// MaxBackpressure is the longest PortConfig.Backpressure: how long one
// batch may wait for room in a port's queue. The bound keeps a port whose
// peer stopped reading from stalling its senders, and every port they
// send to, for more than a moment per batch.
const MaxBackpressure = time.Second

// Backpressure (PortConfig.Backpressure) turns a full egress queue from a
// drop into a wait: the forwarder that finds no room parks until the
// port's egress goroutine has written some, or until the port's wait
// budget for this batch is spent, and only then drops (queue_full). The
// sender's ingress goroutine stops reading meanwhile, so a stream peer
// (QEMU, a socket) is slowed down by its socket buffer filling up, the
// way a QEMU hub holds back a NIC, and nothing is lost. Datagram and TAP
// peers have no such flow control: their excess is dropped by the kernel
// before zswitch reads it.
//
// The egress goroutine wakes waiters after each write: roomWaiters says
// whether anyone waits, and one token on room wakes one of them; a waiter
// that finds no room, or another waiter's token, waits again. Both sides
// check the other's atomic after changing their own (queued, then
// roomWaiters; roomWaiters, then queued), so no wake-up is missed.

// waitRoom waits until n more frames fit in q's queue (true), or until
// the monotonic deadline passes or q starts detaching (false).
func (fw *forwarder) waitRoom(q *Port, n, deadline int64) bool {
	q.roomWaiters.Add(1)
	defer q.roomWaiters.Add(-1)
	for {
		if q.queued.Load()+n <= int64(fw.e.cfg.QueueLen) {
			return true
		}
		left := deadline - monotonic()
		if left <= 0 || q.detaching.Load() {
			return false
		}
		if fw.roomTimer == nil {
			fw.roomTimer = time.NewTimer(time.Duration(left))
		} else {
			fw.roomTimer.Reset(time.Duration(left))
		}
		select {
		case <-q.room:
		case <-q.closing:
		case <-fw.roomTimer.C:
		}
		fw.roomTimer.Stop()
	}
}

// roomFreed wakes a sender waiting for room in p's queue, if there is one.
// The egress goroutine calls it after taking frames off the queue.
func (p *Port) roomFreed() {
	if p.roomWaiters.Load() > 0 {
		select {
		case p.room <- struct{}{}:
		default: // a token is there already
		}
	}
}
