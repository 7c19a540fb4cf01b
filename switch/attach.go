package engine

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// ErrClosed is returned by Attach after Close.
var ErrClosed = errors.New("engine closed")

// Attach adds a port under a unique name with the default PortConfig (a
// VLAN-transparent trunk) and starts forwarding to and from it. The engine
// owns p from now on and closes it on Detach.
func (e *Engine) Attach(name, kind string, p ports.Port) (*Port, error) {
	return e.AttachWith(name, kind, p, PortConfig{})
}

// AttachWith is Attach with a port config.
func (e *Engine) AttachWith(name, kind string, p ports.Port, c PortConfig) (*Port, error) {
	pol, err := compilePolicy(c)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("attach %s: %w", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		p.Close()
		return nil, ErrClosed
	}
	if _, dup := e.byName[name]; dup {
		p.Close()
		return nil, fmt.Errorf("attach %s: a port with this name exists", name)
	}
	old := e.table.Load()
	id, ok := e.freeID(old)
	if !ok {
		p.Close()
		return nil, fmt.Errorf("attach %s: all %d port numbers in use", name, fdb.MaxPort)
	}
	ap := &Port{
		ID: id, Name: name, Kind: kind, Since: e.cfg.Now(),
		p: p, stats: p.Counters(),
		queue:      make(chan *batch, e.cfg.QueueLen),
		closing:    make(chan struct{}),
		room:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	ap.policy.Store(pol)
	ap.tw, _ = p.(ports.TryWriter)
	ap.fw = newForwarder(e, ap)
	ap.in.Init(maxBatch, func(fs []*frame.Frame) { ap.fw.forward(fs, false) })
	if err := e.impairLocked(ap, c.Impair); err != nil { // validated: cannot fail
		p.Close()
		return nil, fmt.Errorf("attach %s: %w", name, err)
	}
	e.fdb.SetPortPolicy(id, c.fdbPolicy())
	// Reserve enough slots that this port's queue, its read-ahead and a
	// batch in flight can be full at once without starving anyone: a stuck
	// port costs memory (lazily), never a stall elsewhere.
	e.pool.Reserve(e.reserve())

	t := &portTable{byID: slices.Clone(old.byID), list: append(slices.Clone(old.list), ap)}
	for int(id) >= len(t.byID) {
		t.byID = append(t.byID, nil)
	}
	t.byID[id] = ap
	e.byName[name] = ap
	e.table.Store(t)
	for _, s := range e.cfg.Static {
		if s.Port == name {
			v := s.VLAN
			if v == 0 { // unset: the VLAN of the port's untagged frames
				v = max(pol.pvid, 1)
			}
			e.fdb.AddStatic(fdb.Key{MAC: s.MAC, VLAN: v}, id)
		}
	}
	e.wg.Go(func() { e.ingress(ap) })
	e.wg.Go(func() { e.egress(ap) })
	e.log.Info("port attached", "port", name, "kind", kind, "id", id)
	return ap, nil
}

func (e *Engine) reserve() int { return e.cfg.QueueLen + readAhead + maxBatch }

// freeID picks the lowest unused port number at or after nextID, wrapping,
// so a number is not reused right after its port left.
func (e *Engine) freeID(t *portTable) (uint16, bool) {
	for range fdb.MaxPort {
		id := e.nextID
		e.nextID = (e.nextID + 1) % fdb.MaxPort
		if int(id) >= len(t.byID) || t.byID[id] == nil {
			return id, true
		}
	}
	return 0, false
}

// Detach removes a port by name, closes it and waits until its goroutines
// are gone. Frames still queued to it are dropped as link_down.
func (e *Engine) Detach(name string) error {
	e.mu.Lock()
	p, ok := e.byName[name]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("detach %s: no such port", name)
	}
	return e.detach(p, false)
}

// detach unpublishes p, waits out the grace period, then stops p's
// goroutines. The ingress goroutine calls it for itself when its port fails.
func (e *Engine) detach(p *Port, fromIngress bool) error {
	if !p.detaching.CompareAndSwap(false, true) {
		if !fromIngress {
			<-p.readerDone
			<-p.writerDone
		}
		return nil
	}
	close(p.closing)
	e.mu.Lock()
	old := e.table.Load()
	t := &portTable{byID: slices.Clone(old.byID)}
	t.byID[p.ID] = nil
	for _, q := range old.list {
		if q != p {
			t.list = append(t.list, q)
		}
	}
	e.table.Store(t)
	delete(e.byName, p.Name)
	e.mu.Unlock()

	err := p.p.Close()
	p.stats.LinkUp.Store(false)
	e.graceWait(old)
	close(p.queue) // nobody can send now: the egress goroutine drains and exits
	e.fdb.FlushPort(p.ID, true)
	e.fdb.SetPortPolicy(p.ID, fdb.PortPolicy{})
	if !fromIngress {
		<-p.readerDone
	}
	<-p.writerDone
	p.pacers.Wait()
	e.flushLines(p) // what the ingress goroutine pushed after the pacer stopped, and out's
	e.mu.Lock()
	e.pool.Reserve(-e.reserve() - p.reserved)
	p.reserved = 0
	e.mu.Unlock()
	e.log.Info("port detached", "port", p.Name)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("detach %s: %w", p.Name, err)
	}
	return nil
}

// graceWait returns once every ingress goroutine that might have loaded
// the table t has finished the batch it was forwarding.
func (e *Engine) graceWait(t *portTable) {
	for _, q := range t.list {
		s := q.forwarding.Load()
		if s%2 == 0 {
			continue
		}
		for q.forwarding.Load() == s {
			runtime.Gosched()
			time.Sleep(10 * time.Microsecond)
		}
	}
}

// Ports returns the attached ports in attach order.
func (e *Engine) Ports() []*Port {
	return slices.Clone(e.table.Load().list)
}

// Port returns an attached port by name.
func (e *Engine) Port(name string) (*Port, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.byName[name]
	return p, ok
}
