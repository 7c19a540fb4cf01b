package engine

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/ports"
)

// A listenerState runs one accept loop: every accepted connection becomes
// a port named NAME/1, NAME/2, … that leaves when its connection ends.
type listenerState struct {
	name, kind string
	cfg        PortConfig // for every accepted port
	l          ports.Listener
	accepted   atomic.Uint64
}

// ListenerInfo describes an attached listener.
type ListenerInfo struct {
	Name, Kind, Addr string
	Accepted         uint64
}

// AttachListener starts accepting connections on l. The engine owns l and
// closes it on DetachListener or Close.
func (e *Engine) AttachListener(name, kind string, l ports.Listener) error {
	return e.AttachListenerWith(name, kind, l, PortConfig{})
}

// AttachListenerWith is AttachListener with the config of every port it accepts.
func (e *Engine) AttachListenerWith(name, kind string, l ports.Listener, c PortConfig) error {
	if err := c.Validate(); err != nil {
		l.Close()
		return fmt.Errorf("listen %s: %w", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		l.Close()
		return ErrClosed
	}
	for s := range e.listeners {
		if s.name == name {
			l.Close()
			return fmt.Errorf("listen %s: a listener with this name exists", name)
		}
	}
	s := &listenerState{name: name, kind: kind, cfg: c, l: l}
	e.listeners[s] = struct{}{}
	e.wg.Go(func() { e.acceptLoop(s) })
	e.log.Info("listening", "port", name, "kind", kind, "addr", l.Addr())
	return nil
}

func (e *Engine) acceptLoop(s *listenerState) {
	backoff := 10 * time.Millisecond
	for {
		p, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait instead of spinning.
			e.log.Warn("accept failed", "port", s.name, "err", err)
			select {
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Second)
				continue
			case <-e.done:
				return
			}
		}
		backoff = 10 * time.Millisecond
		n := s.accepted.Add(1)
		p.Counters().Connects.Add(1)
		if _, err := e.AttachWith(fmt.Sprintf("%s/%d", s.name, n), s.kind, p, s.cfg); err != nil {
			e.log.Warn("accepted connection not attached", "port", s.name, "err", err)
		}
	}
}

// DetachListener stops accepting on a listener; its connections stay.
func (e *Engine) DetachListener(name string) error {
	e.mu.Lock()
	var found *listenerState
	for s := range e.listeners {
		if s.name == name {
			found = s
			delete(e.listeners, s)
		}
	}
	e.mu.Unlock()
	if found == nil {
		return fmt.Errorf("detach listener %s: no such listener", name)
	}
	return found.l.Close()
}

// Listeners describes the attached listeners.
func (e *Engine) Listeners() []ListenerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ListenerInfo, 0, len(e.listeners))
	for s := range e.listeners {
		out = append(out, ListenerInfo{Name: s.name, Kind: s.kind, Addr: s.l.Addr(), Accepted: s.accepted.Load()})
	}
	return out
}
