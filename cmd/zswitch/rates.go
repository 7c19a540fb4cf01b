package main

import (
	"log/slog"
	"time"

	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

// totals are switch-wide counters at one moment.
type totals struct {
	at             time.Time
	rx, tx, txB    uint64
	drops, flooded uint64
}

func sumTotals(e *engine.Engine) totals {
	t := totals{at: time.Now()}
	for _, p := range e.Ports() {
		s := p.Stats()
		t.rx += s.RxFrames.Load()
		t.tx += s.TxFrames.Load()
		t.txB += s.TxBytes.Load()
		t.flooded += s.Flooded.Load()
		for r := range ports.NumDropReasons {
			t.drops += s.IngressDrops[r].Load() + s.EgressDrops[r].Load()
		}
	}
	return t
}

// logRates logs one line of switch-wide rates every interval until stop
// is closed: what a person watching a lab wants without opening Grafana.
// Rates are differences of the port counters, so ports that left in the
// interval can make one line low; the counters themselves stay exact.
func logRates(log *slog.Logger, e *engine.Engine, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := sumTotals(e)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cur := sumTotals(e)
		secs := cur.at.Sub(prev.at).Seconds()
		rate := func(a, b uint64) float64 {
			if a < b {
				return 0 // a port left: its counts went with it
			}
			return float64(a-b) / secs
		}
		log.Info("rates",
			"ports", len(e.Ports()),
			"rx_fps", int64(rate(cur.rx, prev.rx)),
			"tx_fps", int64(rate(cur.tx, prev.tx)),
			"tx_mbps", int64(rate(cur.txB, prev.txB)*8/1e6),
			"flooded_fps", int64(rate(cur.flooded, prev.flooded)),
			"drops_ps", int64(rate(cur.drops, prev.drops)),
			"fdb", e.FDB().Stats().Entries)
		prev = cur
	}
}
