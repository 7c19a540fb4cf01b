package metrics

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// memPort is an in-memory port: frames given to inject come out of
// ReadFrames, and WriteFrames only counts what the switch sends.
type memPort struct {
	ports.Stats
	in      chan []byte
	closed  chan struct{}
	once    sync.Once
	written atomic.Uint64
}

func newMemPort() *memPort {
	p := &memPort{in: make(chan []byte, 1024), closed: make(chan struct{})}
	p.LinkUp.Store(true)
	return p
}

func (m *memPort) inject(b []byte) {
	select {
	case m.in <- b:
	case <-m.closed:
	}
}

func (m *memPort) ReadFrames(fs []*frame.Frame) (int, error) {
	select {
	case b := <-m.in:
		fs[0].SetLen(copy(fs[0].Space(), b))
		i := 1
		for ; i < len(fs); i++ {
			select {
			case b := <-m.in:
				fs[i].SetLen(copy(fs[i].Space(), b))
				continue
			default:
			}
			break
		}
		return i, nil
	case <-m.closed:
		return 0, fmt.Errorf("mem: %w", net.ErrClosed)
	}
}

func (m *memPort) WriteFrames(fs []*frame.Frame) (int, error) {
	m.written.Add(uint64(len(fs)))
	return len(fs), nil
}

func (m *memPort) BatchSize() int { return 64 }

func (m *memPort) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// ethFrame is a 60-byte Ethernet frame from src to dst.
func ethFrame(dst, src byte) []byte {
	b := make([]byte, 60)
	if dst == 0xff {
		copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	} else {
		copy(b, []byte{0x02, 0, 0, 0, 0, dst})
	}
	copy(b[6:], []byte{0x02, 0, 0, 0, 0, src})
	b[12], b[13] = 0x88, 0xb5
	return b
}
