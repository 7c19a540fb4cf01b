package sockets

import (
	"io"
	"sync"
)

// A Session is one connection of a port, which may have several in turn
// (a dialled port has one per connect). It ends once: whoever first sees
// it fail (reader, writer, redialler or Close) ends it with End, which
// records why, closes Conn and closes Dead.
type Session[C io.Closer] struct {
	Conn C
	dead chan struct{} // closed when the session ended
	once sync.Once
	err  error // why it ended; set before dead is closed
}

// NewSession starts a session on conn.
func NewSession[C io.Closer](conn C) *Session[C] {
	return &Session[C]{Conn: conn, dead: make(chan struct{})}
}

// End ends s for reason err, unless it ended already, and reports whether
// this call ended it. before, if not nil, runs first, while a concurrent
// End waits: the port unpublishes s and marks its link down there, so that
// nobody sees s dead and the port still up. Then Conn is closed, and Dead.
func (s *Session[C]) End(err error, before func()) (first bool) {
	s.once.Do(func() {
		first = true
		s.err = err
		if before != nil {
			before()
		}
		s.Conn.Close()
		close(s.dead)
	})
	return first
}

// Dead is closed when s has ended.
func (s *Session[C]) Dead() <-chan struct{} { return s.dead }

// IsDead reports whether s has ended.
func (s *Session[C]) IsDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

// Err is why s ended: the error given to the End that ended it, nil while
// it lives. After End returns, whichever call ended s, Err is set.
func (s *Session[C]) Err() error { return s.err }
