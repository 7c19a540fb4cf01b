package wpan

import (
	"testing"

	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/porttest"
)

// TestSharedContract runs the suite every port kind passes, with PSDU
// sizes: an 802.15.4 port keeps the same promises as an Ethernet one.
func TestSharedContract(t *testing.T) {
	for _, pc := range pairs {
		t.Run(pc.name, func(t *testing.T) {
			porttest.RunWith(t, porttest.Options{Sizes: []int{1, 5, 14, 60, 100, MaxPSDU}},
				func(t *testing.T) (ports.Port, porttest.Peer) { return pc.make(t) })
		})
	}
}
