package engine

import (
	"time"

	"github.com/zswitch/zswitch/fdb"
)

// moveLogEvery bounds how often a MAC move is logged: a MAC flapping
// between two ports moves on nearly every frame.
const moveLogEvery = 10 * time.Second

// noteMove logs, at most every moveLogEvery, that a source MAC showed up
// on another port. A guest that migrated moves once; two guests started
// with the same MAC (QEMU's and Zephyr's defaults are fixed addresses)
// move back and forth, and traffic to them goes astray. The count of all
// moves is in the FDB's statistics (zswitch_fdb_moved_total).
func (e *Engine) noteMove(mac fdb.MAC, vlan, from uint16, to *Port, t *portTable) {
	now := time.Now().UnixNano()
	last := e.lastMoveLog.Load()
	if now-last < int64(moveLogEvery) || !e.lastMoveLog.CompareAndSwap(last, now) {
		return
	}
	fromName := "(a port that left)"
	if q := t.port(from); q != nil {
		fromName = q.Name
	}
	e.log.Warn("a MAC moved to another port; if it keeps moving, two peers share it (give every guest its own mac=)",
		"mac", mac, "vlan", vlan, "from", fromName, "to", to.Name, "moves", e.fdb.Stats().Moved)
}
