package fdb

import (
	"slices"
	"time"
)

// flapWindow is the window for counting flapping MACs when damping is off.
const flapWindow = 10 * time.Second

// maxMoveHistories bounds the move bookkeeping: a storm of spoofed MACs
// must not grow it without limit. Beyond it moves are not damped.
const maxMoveHistories = 4096

// moveHistory is the recent moves of one key. Only moves touch it, and
// they take the table's mutex anyway, so learning's fast path is untouched.
type moveHistory struct {
	since     int64 // Unix ms when the current window began
	moves     int   // moves in the window
	heldUntil int64 // Unix ms; while now < heldUntil the key does not move
	ports     [2]uint16
}

// A Flap is a MAC that moved between ports recently, as Flapping lists it.
type Flap struct {
	Key       Key
	Ports     [2]uint16 // the last move: from, to
	Moves     int       // moves within the window
	HeldUntil time.Time // zero unless damped
}

func (t *Table) window() int64 {
	if t.cfg.MoveLimit > 0 {
		return t.cfg.MoveWindow.Milliseconds()
	}
	return flapWindow.Milliseconds()
}

// dampLocked records a move of w from port from to port to and reports
// whether damping holds it back instead.
func (t *Table) dampLocked(w uint64, from, to uint16, now int64) bool {
	h := t.moves[w]
	if h == nil {
		if len(t.moves) >= maxMoveHistories {
			return false
		}
		h = &moveHistory{since: now}
		t.moves[w] = h
	}
	if now < h.heldUntil {
		return true
	}
	if now-h.since > t.window() {
		h.since, h.moves = now, 0
	}
	h.moves++
	h.ports = [2]uint16{from, to}
	if t.cfg.MoveLimit > 0 && h.moves > t.cfg.MoveLimit {
		h.heldUntil = now + t.cfg.MoveHold.Milliseconds()
		return true
	}
	return false
}

// pruneMovesLocked forgets histories whose window and hold are over.
func (t *Table) pruneMovesLocked(now int64) {
	for w, h := range t.moves {
		if now-h.since > t.window() && now >= h.heldUntil {
			delete(t.moves, w)
		}
	}
}

func (t *Table) flappingLocked() int {
	n := 0
	for _, h := range t.moves {
		if h.moves >= 2 {
			n++
		}
	}
	return n
}

// Flapping lists the MACs that moved at least twice within the window, or
// are held by damping: the sign of two ports claiming one MAC.
func (t *Table) Flapping() []Flap {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Flap
	for w, h := range t.moves {
		if h.moves < 2 && h.heldUntil == 0 {
			continue
		}
		f := Flap{Key: keyFromWord(w), Ports: h.ports, Moves: h.moves}
		if h.heldUntil != 0 {
			f.HeldUntil = time.UnixMilli(h.heldUntil)
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Flap) int { return b.Moves - a.Moves })
	return out
}
