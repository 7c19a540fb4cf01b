package dgram

import (
	"syscall"
	"testing"

	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"github.com/zswitch/zswitch/ports/porttest"
)

func TestContract(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
				c, q := k.open(t, Options{})
				// A burst of 200 frames must not overflow the peer's
				// receive queue while its reader starts.
				if rc, err := q.PacketConn.(syscall.Conn).SyscallConn(); err == nil {
					rc.Control(func(fd uintptr) { mmsg.SetBuffers(int(fd), sockBuf) })
				}
				return c, q
			})
		})
	}
}
