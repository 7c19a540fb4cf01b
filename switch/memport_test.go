package engine

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// memPort is an in-memory port for engine tests: frames sent with inject
// come out of ReadFrames; frames the engine writes land in out (or are
// only counted when out is nil). It stands in for the outside endpoint,
// which is what the engine's tests are about.
type memPort struct {
	ports.Stats
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once

	// gen, when set, makes ReadFrames produce copies of gen forever.
	gen     []byte
	genLeft atomic.Int64
	written atomic.Uint64
	stuck   bool // WriteFrames blocks until Close, like a peer that stopped reading
	batch   int
}

func newMemPort() *memPort {
	return &memPort{in: make(chan []byte, 4096), out: make(chan []byte, 65536), closed: make(chan struct{}), batch: maxBatch}
}

// inject queues b for ReadFrames; once the port is closed it is discarded,
// like a frame sent to a peer that hung up.
func (m *memPort) inject(b []byte) {
	select {
	case m.in <- b:
	case <-m.closed:
	}
}

func (m *memPort) ReadFrames(fs []*frame.Frame) (int, error) {
	if m.gen != nil {
		return m.readGen(fs)
	}
	select {
	case b := <-m.in:
		n := copy(fs[0].Space(), b)
		fs[0].SetLen(n)
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

func (m *memPort) readGen(fs []*frame.Frame) (int, error) {
	// Yield like a real port's read would, so GOMAXPROCS=1 still runs the
	// egress goroutines in between.
	runtime.Gosched()
	select {
	case <-m.closed:
		return 0, fmt.Errorf("mem: %w", net.ErrClosed)
	default:
	}
	left := m.genLeft.Load()
	if left <= 0 { // not started yet, or done: idle like a quiet peer
		select {
		case <-m.closed:
			return 0, fmt.Errorf("mem: %w", net.ErrClosed)
		case <-time.After(time.Millisecond):
			return 0, nil
		}
	}
	n := int(min(int64(len(fs)), left))
	for _, f := range fs[:n] {
		f.SetLen(copy(f.Space(), m.gen))
	}
	m.genLeft.Add(-int64(n))
	return n, nil
}

func (m *memPort) WriteFrames(fs []*frame.Frame) (int, error) {
	if m.stuck {
		<-m.closed
		m.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, fmt.Errorf("mem: %w", net.ErrClosed)
	}
	if m.out != nil {
		for _, f := range fs {
			m.out <- append([]byte(nil), f.Bytes()...)
		}
	}
	m.written.Add(uint64(len(fs)))
	return len(fs), nil
}

func (m *memPort) BatchSize() int { return m.batch }

func (m *memPort) Close() error {
	m.once.Do(func() { close(m.closed) })
	return nil
}

// recv waits for the next frame written to m.
func (m *memPort) recv(d time.Duration) ([]byte, bool) {
	select {
	case b := <-m.out:
		return b, true
	case <-time.After(d):
		return nil, false
	}
}

// ethFrame builds an Ethernet frame of size bytes (at least 14).
func ethFrame(dst, src [6]byte, size int) []byte {
	b := make([]byte, size)
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	b[12], b[13] = 0x88, 0xb5 // local experimental EtherType
	for i := 14; i < size; i++ {
		b[i] = byte(i)
	}
	return b
}

var (
	macA  = [6]byte{0x52, 0x54, 0, 0, 0, 0xa}
	macB  = [6]byte{0x52, 0x54, 0, 0, 0, 0xb}
	macC  = [6]byte{0x52, 0x54, 0, 0, 0, 0xc}
	bcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ip6mc = [6]byte{0x33, 0x33, 0xff, 0, 0, 0xb} // IPv6 solicited-node multicast
)
