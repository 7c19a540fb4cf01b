package fdb

// PortPolicy is a port's own learning rule (port security).
type PortPolicy struct {
	// Limit caps the MACs learned on the port; frames from further new
	// MACs are refused with OverLimit, for the engine to drop. 0 defers to
	// the table-wide Config.PortLimit (which refuses without dropping).
	Limit int
	// Sticky turns the port's learned MACs into static entries: they never
	// age or move, and another port sending from them gets Bound.
	Sticky bool
}

// SetPortPolicy sets port's policy; the zero PortPolicy removes it. MACs
// learned before stay as they are.
func (t *Table) SetPortPolicy(port uint16, p PortPolicy) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p == (PortPolicy{}) {
		delete(t.policies, port)
		return
	}
	t.policies[port] = p
}

// PortPolicy returns port's policy.
func (t *Table) PortPolicy(port uint16) PortPolicy {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.policies[port]
}

// PortCount is how many dynamic and sticky MACs are learned on port.
func (t *Table) PortCount(port uint16) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.perPort[port]
}
