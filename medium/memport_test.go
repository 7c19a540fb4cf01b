package medium

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// memPort is an in-memory node: frames sent with inject come out of
// ReadFrames; WriteFrames records the sequence number (bytes 2..6) of every
// frame it is given, and when stuck blocks until Close like a peer that
// stopped reading.
type memPort struct {
	ports.Stats
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	stuck  bool
	keep   bool // record every frame's bytes too

	mu    sync.Mutex
	got   []uint32
	when  []time.Time
	bytes [][]byte
	n     atomic.Int64
}

func newMemPort() *memPort {
	return &memPort{in: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (p *memPort) inject(b []byte) {
	select {
	case p.in <- b:
	case <-p.closed:
	}
}

func (p *memPort) ReadFrames(fs []*frame.Frame) (int, error) {
	select {
	case b := <-p.in:
		fs[0].SetLen(copy(fs[0].Space(), b))
		i := 1
		for ; i < len(fs); i++ {
			select {
			case b := <-p.in:
				fs[i].SetLen(copy(fs[i].Space(), b))
				continue
			default:
			}
			break
		}
		return i, nil
	case <-p.closed:
		return 0, fmt.Errorf("mem: %w", net.ErrClosed)
	}
}

func (p *memPort) WriteFrames(fs []*frame.Frame) (int, error) {
	if p.stuck {
		<-p.closed
		p.DropOut(ports.DropLinkDown, uint64(len(fs)))
		return 0, fmt.Errorf("mem: %w", net.ErrClosed)
	}
	now := time.Now()
	p.mu.Lock()
	for _, f := range fs {
		p.got = append(p.got, seqOf(f.Bytes()))
		p.when = append(p.when, now)
		if p.keep {
			p.bytes = append(p.bytes, slices.Clone(f.Bytes()))
		}
	}
	p.mu.Unlock()
	p.n.Add(int64(len(fs)))
	return len(fs), nil
}

func (p *memPort) BatchSize() int { return maxBatch }

func (p *memPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func (p *memPort) received() ([]uint32, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint32(nil), p.got...), append([]time.Time(nil), p.when...)
}

// psdu returns an 802.15.4 data frame (frame control 0x8841, sequence
// number seq&0xff) of size bytes whose bytes 3..6 carry seq in full.
func psdu(seq uint32, size int) []byte {
	b := make([]byte, max(size, 9))
	b[0], b[1], b[2] = 0x41, 0x88, byte(seq)
	binary.BigEndian.PutUint32(b[3:], seq)
	b[7], b[8] = 0xff, 0xff
	return b[:max(size, 9)]
}

func seqOf(b []byte) uint32 {
	if len(b) < 7 {
		return 0
	}
	return binary.BigEndian.Uint32(b[3:])
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkIdentities checks both counter identities on every node. A port
// counts a frame before its node counts it sent, so the identities hold
// once the goroutines settle: they get a few seconds to.
func checkIdentities(t testing.TB, nodes ...*Node) {
	t.Helper()
	var broken []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		broken = broken[:0]
		for _, n := range nodes {
			broken = append(broken, identityErrors(n)...)
		}
		if len(broken) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, e := range broken {
		t.Error(e)
	}
}

func identityErrors(n *Node) []string {
	s := n.Stats()
	var in, out uint64
	for r := range ports.NumDropReasons {
		in += s.IngressDrops[r].Load()
		out += s.EgressDrops[r].Load()
	}
	var errs []string
	if l, r := s.RxFrames.Load()+s.RxInvalid.Load()+s.RxDuplicated.Load(), s.Forwarded.Load()+in; l != r {
		errs = append(errs, fmt.Sprintf("%s: rx %d + invalid %d + duplicated %d != forwarded %d + ingress drops %d",
			n.Name, s.RxFrames.Load(), s.RxInvalid.Load(), s.RxDuplicated.Load(), s.Forwarded.Load(), in))
	}
	if l, r := s.Enqueued.Load()+s.TxDuplicated.Load(), s.TxFrames.Load()+out; l != r {
		errs = append(errs, fmt.Sprintf("%s: enqueued %d + duplicated %d != tx %d + egress drops %d",
			n.Name, s.Enqueued.Load(), s.TxDuplicated.Load(), s.TxFrames.Load(), out))
	}
	return errs
}

func attach(t testing.TB, m *Medium, name string, p ports.Port) *Node {
	t.Helper()
	n, err := m.Attach(name, p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
