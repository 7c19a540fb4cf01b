package zbench

// Workloads, in table order. Every throughput workload sends 64-byte
// frames unless its name says otherwise; see bench/README.md.
const (
	W64      = "1 pair 64 B"
	W1514    = "1 pair 1514 B"
	W64W     = "1 pair 64 B window"
	WRTT     = "ping-pong 64 B"
	W2P      = "2 pairs 64 B"
	W8P      = "8 pairs 64 B"
	WBcast   = "broadcast 1→7 64 B"
	WIdle8   = "1 pair, 8 idle ports"
	WIdle64  = "1 pair, 64 idle ports"
	WIdle256 = "1 pair, 256 idle ports"
	WLearn   = "1 pair, 100k MACs"
)

// Window is the in-flight limit of the windowed workloads: below the
// smallest queue on any path (TAP reader queue 500, CPU backlog 1000,
// zswitch's engine queue), so a switch that forwards never has to drop.
const Window = 256

// LearnMACs is how many source MACs fill the table before WLearn is
// measured (Options.LearnMACs overrides it).
const LearnMACs = 100000

// bcastReceivers is how many endpoints each broadcast frame must reach.
const bcastReceivers = 7

// A workload is what one measurement does on one peer.
type workload struct {
	name   string
	eps    int    // active endpoints attached (endpoint 0 sends)
	idle   int    // idle ports attached
	pairs  int    // unicast pairs 2k → 2k+1 (0: not a pair workload)
	bcast  bool   // endpoint 0 broadcasts to endpoints 1..bcastReceivers
	size   int    // frame bytes
	window uint64 // in-flight limit (0: unpaced)
	rtt    bool   // ping-pong between endpoints 0 and 1
	learn  bool   // endpoint 2 fills the MAC table first
}

func workloads(quick bool) []workload {
	ws := []workload{
		{name: W64, eps: 2, pairs: 1, size: 64},
		{name: W1514, eps: 2, pairs: 1, size: 1514},
		{name: W64W, eps: 2, pairs: 1, size: 64, window: Window},
		{name: WRTT, eps: 2, size: 64, rtt: true},
		{name: W2P, eps: 4, pairs: 2, size: 64},
		{name: W8P, eps: 16, pairs: 8, size: 64},
		{name: WBcast, eps: 1 + bcastReceivers, bcast: true, size: 64, window: Window},
		{name: WIdle8, eps: 2, idle: 8, pairs: 1, size: 64},
		{name: WIdle64, eps: 2, idle: 64, pairs: 1, size: 64},
		{name: WIdle256, eps: 2, idle: 256, pairs: 1, size: 64},
		{name: WLearn, eps: 3, pairs: 1, size: 64, learn: true},
	}
	if quick { // every code path, not every size
		out := ws[:0]
		for _, w := range ws {
			if w.name != WIdle64 && w.name != WIdle256 {
				out = append(out, w)
			}
		}
		ws = out
	}
	return ws
}
