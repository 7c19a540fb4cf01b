package slip

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/porttest"
)

func TestContract(t *testing.T) {
	// The suite sends frames as long as the slot: raise MaxFrame to it.
	opt := Options{MaxFrame: frame.DefaultSlotSize}
	t.Run("unix listen", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) { return listenPair(t, opt) })
	})
	t.Run("unix dial", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
			path := filepath.Join(t.TempDir(), "qemu.sock")
			_, accept := qemuServer(t, path)
			p := dial(t, path, opt)
			q := accept()
			waitFor(t, "link up", p.LinkUp.Load)
			return p, q
		})
	})
	t.Run("pty", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
			p, link := openPTYPort(t, opt)
			f := openFile(t, link)
			t.Cleanup(func() { f.Close() })
			waitFor(t, "link up", p.LinkUp.Load)
			return p, &peer{rw: f}
		})
	})
	t.Run("tty", func(t *testing.T) {
		porttest.Run(t, func(t *testing.T) (ports.Port, porttest.Peer) {
			p, master := ttyPair(t, 115200, opt)
			return p, &peer{rw: master}
		})
	})
}

// ttyPair makes a pty and opens its slave with OpenTTY, as a board's
// serial device; it returns the port and the master, the board's end.
func ttyPair(t testing.TB, baud int, opt Options) (*Port, *os.File) {
	t.Helper()
	master, pts, err := openPTY()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	p, err := OpenTTY(pts, baud, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	waitFor(t, "link up", p.LinkUp.Load)
	return p, master
}
