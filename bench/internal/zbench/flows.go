package zbench

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// A flow is one sender and the endpoints that must each receive every
// frame it sends: one for unicast, several for a broadcast.
type flow struct {
	id  uint16
	src *endpoint
	dst [6]byte
	rcv []*endpoint
	// learn > 0: source MACs cycle through that many learnMACs.
	learn uint64
}

// throughput is the outcome of one set of concurrent flows. Sent counts
// expected deliveries (frames × receivers).
type throughput struct {
	Sent, Got, Lost, Reorder, Corrupt uint64
	Elapsed                           time.Duration // start to the last frame received
}

// runFlows runs the flows at once for dur (or until limit frames per
// flow), each sender unpaced or windowed, and checks what arrives.
func runFlows(flows []flow, size int, dur time.Duration, limit, window uint64) (throughput, error) {
	type state struct {
		s    *sender
		fc   *flowCtl
		rs   []*receiver
		want atomic.Uint64
		sent uint64
		err  error
	}
	st := make([]*state, len(flows))
	for i, f := range flows {
		s := &state{s: newSender(f.src, f.dst, f.id, size, 64, f.learn), fc: newFlowCtl(len(f.rcv))}
		for j, ep := range f.rcv {
			s.rs = append(s.rs, &receiver{ep: ep, flow: f.id, size: size, fc: s.fc, idx: j})
		}
		st[i] = s
	}
	var rwg, swg sync.WaitGroup
	var errMu sync.Mutex
	var rerrs []error
	t0 := time.Now()
	for _, s := range st {
		for _, r := range s.rs {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				if err := r.run(&s.want); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					errMu.Lock()
					rerrs = append(rerrs, fmt.Errorf("%s→%s: %w", s.s.ep.name, r.ep.name, err))
					errMu.Unlock()
				}
			}()
		}
	}
	for _, s := range st {
		swg.Add(1)
		go func() {
			defer swg.Done()
			s.sent, s.err = s.s.blast(dur, limit, &aborted, window, s.fc)
			s.want.Store(max(s.sent, 1)) // 0 would mean "not known yet"
		}()
	}
	swg.Wait()
	// Wait for the receivers to account for everything, or to stall.
	done := make(chan struct{})
	go func() { rwg.Wait(); close(done) }()
	progress := func() (p uint64) {
		for _, s := range st {
			p += s.fc.total()
		}
		return p
	}
	idle := 300 * time.Millisecond
	lastP, lastT := progress(), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			if p := progress(); p != lastP {
				lastP, lastT = p, time.Now()
			} else if time.Since(lastT) > idle {
				for _, s := range st {
					for _, r := range s.rs {
						r.ep.setReadDeadline(time.Unix(1, 0))
					}
				}
				<-done
				break wait
			}
		}
	}
	var res throughput
	var last time.Time
	var errs []error
	for _, s := range st {
		for _, r := range s.rs {
			r.ep.setReadDeadline(time.Time{})
			res.Sent += s.sent
			res.Got += r.got
			res.Reorder += r.reorder
			res.Corrupt += r.corrupt
			if r.last.After(last) {
				last = r.last
			}
		}
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s sending: %w", s.s.ep.name, s.err))
		}
	}
	if res.Sent > res.Got {
		res.Lost = res.Sent - res.Got
	}
	if !last.IsZero() {
		res.Elapsed = last.Sub(t0)
	}
	errs = append(errs, rerrs...)
	return res, errors.Join(errs...)
}
