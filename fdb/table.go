// Package fdb implements an IEEE 802.1D filtering database: MAC learning with
// aging, per-port limits and static entries.
//
// Lookups never lock and never allocate: the table is an open-addressing hash
// of atomic words. Writers (a new MAC, a move, aging, flushes) serialise on
// one mutex; a refresh of a known MAC on its known port is a lock-free CAS
// done at most once per second per MAC.
package fdb

import (
	"sync"
	"sync/atomic"
	"time"
)

// Config sets the table's limits.
type Config struct {
	// MaxEntries caps the table (default 65536). A full table keeps
	// forwarding (unknown destinations flood) but learns nothing new.
	MaxEntries int
	// AgingTime removes entries not seen for this long (default 300 s,
	// 802.1D's recommendation). Negative means never.
	AgingTime time.Duration
	// PortLimit caps the MACs learned on one port; 0 means no limit.
	// Beyond it frames still flow but their MACs are not learned (Refused);
	// a port's own SetPortPolicy limit drops them instead (OverLimit).
	PortLimit int
	// MoveLimit damps MAC moves: a MAC that moves more than MoveLimit times
	// within MoveWindow stays where it is for MoveHold, and Learn reports
	// Damped for it elsewhere. 0 turns damping off.
	MoveLimit  int
	MoveWindow time.Duration // default 1s
	MoveHold   time.Duration // default 10s
}

const (
	DefaultMaxEntries = 65536
	DefaultAgingTime  = 300 * time.Second

	// refreshMillis is how stale a timestamp may get before a frame from
	// the same MAC on the same port rewrites it. It keeps hot MACs from
	// writing a shared cache line on every frame.
	refreshMillis = 1000

	// MaxPort is the highest port number an entry can hold.
	MaxPort = 1<<15 - 1
)

// Result says what Learn did.
type Result uint8

const (
	Known     Result = iota // already there on this port
	Learned                 // a new entry
	Moved                   // the MAC moved here from another port
	Refused                 // not learned: table full or the table-wide port limit; forward anyway
	OverLimit               // not learned: the port's own MAC limit (SetPortPolicy) is reached
	Bound                   // not learned: a static or sticky entry binds the MAC to another port
	Damped                  // not moved: the MAC flaps between ports and is held where it was
)

// Stats are the table's lifetime counters.
type Stats struct {
	Entries, Static, Sticky       int
	Learned, Moved, Aged, Refused uint64
	OverLimit, Bound, Damped      uint64
	Capacity                      int
	// Flapping is how many MACs moved at least twice within MoveWindow
	// (10s when damping is off): two ports claiming one MAC.
	Flapping int
}

// An Entry is one row, as listed by Entries.
type Entry struct {
	Key    Key
	Port   uint16
	Static bool // never aged, never moved: from the config, ctl, or Sticky
	Sticky bool // learned on a sticky port and then held like a static entry
	Seen   time.Time
}

// A Table is safe for concurrent use. Lookup does not allocate and does
// not wait for writers. Use New; the zero Table is not ready.
type Table struct {
	slots atomic.Pointer[[]slot] // replaced whole when tombstones pile up

	mu         sync.Mutex // guards everything below, and every write except refreshes
	cfg        Config
	entries    int
	static     int
	tombstones int
	sticky     int
	perPort    map[uint16]int // dynamic and sticky entries per port, for the limits
	policies   map[uint16]PortPolicy
	moves      map[uint64]*moveHistory // recently moved keys (moves.go)

	learned, moved, aged, refused atomic.Uint64
	overLimit, bound, damped      atomic.Uint64
}

// slot holds a key word (0 empty, tombstone deleted) and a value word:
// bit 63 static, bits 48..62 port, bits 0..47 last-seen Unix milliseconds.
// A static entry's milliseconds are 0, except a sticky one's: when it was
// learned (sticky entries are static entries that learning made).
type slot struct {
	key atomic.Uint64
	val atomic.Uint64
}

const (
	tombstone  = ^uint64(0)
	staticBit  = 1 << 63
	portShift  = 48
	portMask   = MaxPort
	millisMask = 1<<48 - 1
)

func pack(port uint16, static bool, ms int64) uint64 {
	v := uint64(port&portMask)<<portShift | uint64(ms)&millisMask
	if static {
		v |= staticBit
	}
	return v
}

func valPort(v uint64) uint16  { return uint16(v>>portShift) & portMask }
func valStatic(v uint64) bool  { return v&staticBit != 0 }
func valSticky(v uint64) bool  { return valStatic(v) && valMillis(v) != 0 }
func valMillis(v uint64) int64 { return int64(v & millisMask) }

// New returns an empty table.
func New(cfg Config) *Table {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.AgingTime == 0 {
		cfg.AgingTime = DefaultAgingTime
	}
	if cfg.MoveWindow <= 0 {
		cfg.MoveWindow = time.Second
	}
	if cfg.MoveHold <= 0 {
		cfg.MoveHold = 10 * time.Second
	}
	t := &Table{cfg: cfg, perPort: make(map[uint16]int), policies: make(map[uint16]PortPolicy), moves: make(map[uint64]*moveHistory)}
	s := make([]slot, capacityFor(cfg.MaxEntries))
	t.slots.Store(&s)
	return t
}

// capacityFor keeps the load factor at or below one half, so probes stay short.
func capacityFor(maxEntries int) int {
	n := 64
	for n < 2*maxEntries {
		n <<= 1
	}
	return n
}

// hash spreads key words over the table (Fibonacci hashing).
func hash(w uint64, mask int) int {
	return int((w*0x9E3779B97F4A7C15)>>32) & mask
}

// Lookup returns the port a destination was learned on.
func (t *Table) Lookup(k Key) (port uint16, ok bool) {
	s := *t.slots.Load()
	i, v := find(s, k.word())
	if i < 0 {
		return 0, false
	}
	return valPort(v), true
}

// find probes for key word w. It returns the slot index and a value word
// read while the key was in place, or -1.
func find(s []slot, w uint64) (int, uint64) {
	mask := len(s) - 1
	for i, n := hash(w, mask), 0; n < len(s); i, n = (i+1)&mask, n+1 {
		k := s[i].key.Load()
		if k == 0 {
			return -1, 0
		}
		if k == w {
			v := s[i].val.Load()
			// The slot may have been deleted and reused between the two
			// loads; the second load of the key catches that.
			if s[i].key.Load() != w {
				continue
			}
			return i, v
		}
	}
	return -1, 0
}

// Learn records that key k was seen on port at now (Unix milliseconds).
func (t *Table) Learn(k Key, port uint16, now int64) Result {
	r, _ := t.LearnFrom(k, port, now)
	return r
}

// LearnFrom is Learn that also returns, for Moved, Bound and Damped, the
// port the MAC is (or was) on.
func (t *Table) LearnFrom(k Key, port uint16, now int64) (Result, uint16) {
	w := k.word()
	s := *t.slots.Load()
	if i, v := find(s, w); i >= 0 && valPort(v) == port {
		if !valStatic(v) && now-valMillis(v) >= refreshMillis {
			// Losing this race to a writer is fine: the next frame retries.
			s[i].val.CompareAndSwap(v, pack(port, false, now))
		}
		return Known, port
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.learnLocked(w, port, now)
}

func (t *Table) learnLocked(w uint64, port uint16, now int64) (Result, uint16) {
	s := *t.slots.Load()
	pol := t.policies[port]
	i, v := find(s, w)
	if i >= 0 {
		old := valPort(v)
		switch {
		case old == port:
			return Known, port
		case valStatic(v):
			t.bound.Add(1)
			return Bound, old
		}
		if r := t.limitLocked(port, pol); r != Known {
			return r, old
		}
		if t.dampLocked(w, old, port, now) {
			t.damped.Add(1)
			return Damped, old
		}
		s[i].val.Store(pack(port, pol.Sticky, now))
		t.countPort(old, -1)
		t.countPort(port, +1)
		if pol.Sticky {
			t.sticky++
		}
		t.moved.Add(1)
		return Moved, old
	}
	if t.entries >= t.cfg.MaxEntries {
		t.refused.Add(1)
		return Refused, port
	}
	if r := t.limitLocked(port, pol); r != Known {
		return r, port
	}
	t.insertLocked(w, pack(port, pol.Sticky, now))
	t.countPort(port, +1)
	if pol.Sticky {
		t.sticky++
	}
	t.learned.Add(1)
	return Learned, port
}

// limitLocked checks a new MAC on port against the port's own limit, then
// the table-wide one; Known means within both.
func (t *Table) limitLocked(port uint16, pol PortPolicy) Result {
	switch {
	case pol.Limit > 0 && t.perPort[port] >= pol.Limit:
		t.overLimit.Add(1)
		return OverLimit
	case pol.Limit == 0 && t.cfg.PortLimit > 0 && t.perPort[port] >= t.cfg.PortLimit:
		t.refused.Add(1)
		return Refused
	}
	return Known
}

// insertLocked stores a key known to be absent, reusing the first tombstone
// on its probe path.
func (t *Table) insertLocked(w, v uint64) {
	s := *t.slots.Load()
	mask := len(s) - 1
	for i := hash(w, mask); ; i = (i + 1) & mask {
		k := s[i].key.Load()
		if k == 0 || k == tombstone {
			if k == tombstone {
				t.tombstones--
			}
			// Value first: a reader that sees the key sees its value.
			s[i].val.Store(v)
			s[i].key.Store(w)
			t.entries++
			return
		}
	}
}

func (t *Table) deleteLocked(s []slot, i int) {
	s[i].key.Store(tombstone)
	t.entries--
	t.tombstones++
}

// rehashLocked rebuilds the slots once deletions have left many tombstones,
// which would otherwise lengthen every probe.
func (t *Table) rehashLocked() {
	old := *t.slots.Load()
	if t.tombstones < len(old)/4 {
		return
	}
	s := make([]slot, len(old))
	mask := len(s) - 1
	for i := range old {
		k := old[i].key.Load()
		if k == 0 || k == tombstone {
			continue
		}
		j := hash(k, mask)
		for s[j].key.Load() != 0 {
			j = (j + 1) & mask
		}
		s[j].val.Store(old[i].val.Load())
		s[j].key.Store(k)
	}
	t.tombstones = 0
	t.slots.Store(&s)
}

func (t *Table) countPort(port uint16, d int) {
	if n := t.perPort[port] + d; n > 0 {
		t.perPort[port] = n
	} else {
		delete(t.perPort, port)
	}
}

// Expire removes dynamic entries last seen more than AgingTime before now
// (Unix milliseconds) and returns how many it removed.
func (t *Table) Expire(now int64) int {
	if t.cfg.AgingTime < 0 {
		return 0
	}
	t.mu.Lock()
	t.pruneMovesLocked(now)
	t.mu.Unlock()
	limit := now - t.cfg.AgingTime.Milliseconds()
	return t.deleteWhere(func(v uint64) bool { return !valStatic(v) && valMillis(v) <= limit }, true)
}

// FlushPort removes the port's dynamic entries, and its static and sticky
// ones too if withStatic; 802.1D flushes a port whose link goes down.
func (t *Table) FlushPort(port uint16, withStatic bool) int {
	return t.deleteWhere(func(v uint64) bool {
		return valPort(v) == port && (withStatic || !valStatic(v))
	}, false)
}

// Flush removes every dynamic entry.
func (t *Table) Flush() int {
	return t.deleteWhere(func(v uint64) bool { return !valStatic(v) }, false)
}

func (t *Table) deleteWhere(match func(v uint64) bool, aging bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := *t.slots.Load()
	n := 0
	for i := range s {
		k := s[i].key.Load()
		if k == 0 || k == tombstone {
			continue
		}
		v := s[i].val.Load()
		if !match(v) {
			continue
		}
		// A concurrent refresh wins: the MAC is alive after all.
		if aging && !s[i].val.CompareAndSwap(v, v) {
			continue
		}
		t.deleteLocked(s, i)
		t.uncountLocked(v)
		n++
	}
	if aging {
		t.aged.Add(uint64(n))
	}
	t.rehashLocked()
	return n
}

// AddStatic installs a static entry: never aged, never moved by learning.
// It replaces a dynamic entry for the same key.
func (t *Table) AddStatic(k Key, port uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := k.word()
	s := *t.slots.Load()
	if i, v := find(s, w); i >= 0 {
		if valSticky(v) || !valStatic(v) {
			t.uncountLocked(v)
			t.static++
		}
		s[i].val.Store(pack(port, true, 0))
		return
	}
	t.insertLocked(w, pack(port, true, 0))
	t.static++
}

// Delete removes one entry, static or dynamic, and reports whether it existed.
func (t *Table) Delete(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := *t.slots.Load()
	i, v := find(s, k.word())
	if i < 0 {
		return false
	}
	t.deleteLocked(s, i)
	t.uncountLocked(v)
	return true
}

// uncountLocked updates the counts for a deleted entry's value.
func (t *Table) uncountLocked(v uint64) {
	switch {
	case valSticky(v):
		t.sticky--
		t.countPort(valPort(v), -1)
	case valStatic(v):
		t.static--
	default:
		t.countPort(valPort(v), -1)
	}
}

// Entries returns a snapshot of the table, for the control API.
func (t *Table) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := *t.slots.Load()
	out := make([]Entry, 0, t.entries)
	for i := range s {
		k := s[i].key.Load()
		if k == 0 || k == tombstone {
			continue
		}
		v := s[i].val.Load()
		e := Entry{Key: keyFromWord(k), Port: valPort(v), Static: valStatic(v), Sticky: valSticky(v)}
		if !e.Static || e.Sticky {
			e.Seen = time.UnixMilli(valMillis(v))
		}
		out = append(out, e)
	}
	return out
}

// Stats returns the entry counts and lifetime counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{
		Entries: t.entries, Static: t.static, Sticky: t.sticky, Capacity: t.cfg.MaxEntries,
		Learned: t.learned.Load(), Moved: t.moved.Load(),
		Aged: t.aged.Load(), Refused: t.refused.Load(),
		OverLimit: t.overLimit.Load(), Bound: t.bound.Load(), Damped: t.damped.Load(),
		Flapping: t.flappingLocked(),
	}
}

// Config returns the limits the table was made with, defaults filled in.
func (t *Table) Config() Config { return t.cfg }
