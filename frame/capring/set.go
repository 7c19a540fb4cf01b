package capring

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// A Set is the list of running captures a datapath offers its frames to.
// Readers on the forwarding path pay one atomic load, and nothing else
// while the set is empty; changes copy the list under a lock.
type Set[C comparable] struct {
	mu   sync.Mutex // serialises changes
	next uint64
	list atomic.Pointer[[]C] // immutable; nil while nobody captures
}

// Active returns the running captures without copying, or nil. The
// caller must not modify the slice.
func (s *Set[C]) Active() []C {
	if l := s.list.Load(); l != nil {
		return *l
	}
	return nil
}

// List returns a copy of the running captures.
func (s *Set[C]) List() []C { return slices.Clone(s.Active()) }

// NextID takes the next capture ID.
func (s *Set[C]) NextID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	return s.next
}

// Add starts offering frames to c. Give c its ID (NextID) before: once
// added, other goroutines read it.
func (s *Set[C]) Add(c C) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := append(slices.Clone(s.Active()), c)
	s.list.Store(&l)
}

// Remove stops offering frames to c. The set is nil again when empty, so
// the datapath is back to a single load.
func (s *Set[C]) Remove(c C) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := slices.DeleteFunc(slices.Clone(s.Active()), func(x C) bool { return x == c })
	if len(l) == 0 {
		s.list.Store(nil)
		return
	}
	s.list.Store(&l)
}

// A Selection says which sources a capture takes: all of them, one by
// name, or every NAME/N connection of a listener called NAME.
type Selection struct {
	All    bool
	Name   string
	Prefix bool // NAME/… rather than NAME
}

// Selects reports whether frames from the source called name are taken.
func (s Selection) Selects(name string) bool {
	switch {
	case s.All:
		return true
	case s.Prefix:
		return len(name) > len(s.Name) && name[len(s.Name)] == '/' && strings.HasPrefix(name, s.Name)
	}
	return name == s.Name
}

// String is what the capture was started with: a name, or "all".
func (s Selection) String() string {
	if s.All {
		return "all"
	}
	return s.Name
}
