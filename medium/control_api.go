package medium

import "fmt"

// DetachListener stops accepting on a listener; the nodes it accepted stay.
func (m *Medium) DetachListener(name string) error {
	m.mu.Lock()
	l, ok := m.listeners[name]
	delete(m.listeners, name)
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("detach listener %s: no such listener", name)
	}
	return l.Close()
}
