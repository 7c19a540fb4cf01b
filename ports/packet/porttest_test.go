package packet

import (
	"testing"

	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/porttest"
)

// TestContract runs the contract suite on a port attached to one end of a
// veth pair, with a plain packet socket on the other end as the peer. The
// MTU is large enough for the suite's slot-sized and oversize frames.
func TestContract(t *testing.T) {
	porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
		n := newNet(t)
		n.veth(t, "zsa", "zsb", 9000)
		peer := n.peer(t, "zsb")
		return n.openUp(t, "zsa", Options{}), peer
	})
}
