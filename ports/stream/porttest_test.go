package stream

import (
	"path/filepath"
	"testing"

	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/porttest"
)

func TestContract(t *testing.T) {
	t.Run("unix listen", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) { return listenPair(t, "unix", Options{}) })
	})
	t.Run("tcp listen", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) { return listenPair(t, "tcp", Options{}) })
	})
	t.Run("unix dial", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
			path := filepath.Join(t.TempDir(), "qemu.sock")
			_, accept := qemuServer(t, path)
			c := dial(t, "unix", path, Options{})
			q := accept()
			waitFor(t, "link up", c.LinkUp.Load)
			return c, q
		})
	})
}
