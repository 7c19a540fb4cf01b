package wpan

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// slotSize is the slot every test uses: one PSDU and a spare byte.
const slotSize = 128

// wait bounds every step that should take milliseconds.
const wait = 5 * time.Second

// psdu returns PSDU i of size bytes: an 802.15.4 data frame header (frame
// control 0x8841: data, PAN ID compression, short addresses), sequence
// number i and a payload that carries i.
func psdu(i, size int) []byte {
	b := make([]byte, size)
	hdr := []byte{0x41, 0x88, byte(i), 0xcd, 0xab, 0xff, 0xff, 0x01, 0x00}
	copy(b, hdr)
	for j := len(hdr); j < size; j++ {
		b[j] = byte(i*7 + j)
	}
	return b
}

// encode frames psdus for the pipe.
func encode(psdus ...[]byte) []byte {
	var b []byte
	for _, p := range psdus {
		b = AppendFrame(b, p)
	}
	return b
}

func frames(t testing.TB, n int) []*frame.Frame {
	t.Helper()
	fs := make([]*frame.Frame, n)
	if got := frame.NewPool(n, slotSize).Get(fs); got != n {
		t.Fatalf("pool gave %d of %d frames", got, n)
	}
	return fs
}

func setFrames(fs []*frame.Frame, psdus [][]byte) {
	for i, b := range psdus {
		fs[i].SetLen(copy(fs[i].Space(), b))
	}
}

// A peer is the far end of a port as QEMU sees it: a byte stream in the
// UART pipe framing.
type peer struct {
	r     io.Reader
	w     io.Writer
	close func() error
	setRD func(time.Time) error
	dec   Decoder
	fs    []*frame.Frame
	queue [][]byte
	buf   []byte
}

func newPeer(r io.Reader, w io.Writer, setRD func(time.Time) error, close func() error) *peer {
	fs := make([]*frame.Frame, 64)
	frame.NewPool(len(fs), slotSize).Get(fs)
	return &peer{r: r, w: w, setRD: setRD, close: close, fs: fs, buf: make([]byte, 8192)}
}

func (q *peer) Send(b []byte) error {
	_, err := q.w.Write(encode(b))
	return err
}

func (q *peer) sendRaw(t testing.TB, b []byte) {
	t.Helper()
	if _, err := q.w.Write(b); err != nil {
		t.Fatalf("peer write: %v", err)
	}
}

// Recv returns the next frame, or an error wrapping
// os.ErrDeadlineExceeded after timeout.
func (q *peer) Recv(timeout time.Duration) ([]byte, error) {
	q.setRD(time.Now().Add(timeout))
	for len(q.queue) == 0 {
		k, err := q.r.Read(q.buf)
		for b := q.buf[:k]; len(b) > 0; {
			n, used, _, _ := q.dec.Decode(b, q.fs)
			for _, f := range q.fs[:n] {
				q.queue = append(q.queue, bytes.Clone(f.Bytes()))
			}
			b = b[used:]
		}
		if err != nil && len(q.queue) == 0 {
			return nil, err
		}
	}
	b := q.queue[0]
	q.queue = q.queue[1:]
	return b, nil
}

func (q *peer) Close() error { return q.close() }

func (q *peer) recv(t testing.TB) []byte {
	t.Helper()
	b, err := q.Recv(wait)
	if err != nil {
		t.Fatalf("peer recv: %v", err)
	}
	return b
}

// qemuPipe opens path's FIFOs as QEMU's -serial pipe: does: it reads
// path.in and writes path.out, both O_RDWR.
func qemuPipe(t testing.TB, path string) *peer {
	t.Helper()
	in, err := os.OpenFile(path+".in", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(path+".out", os.O_RDWR, 0)
	if err != nil {
		in.Close()
		t.Fatal(err)
	}
	q := newPeer(in, out, in.SetReadDeadline, func() error { return errors.Join(in.Close(), out.Close()) })
	t.Cleanup(func() { q.Close() })
	return q
}

func openPipe(t testing.TB, opt Options) (*Port, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ip-stack-node1")
	p, err := OpenPipe(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, path
}

// readN reads frames from p until it has n or wait passes.
func readN(t testing.TB, p ports.Port, n int) [][]byte {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		fs := frames(t, 16)
		var got [][]byte
		for len(got) < n {
			k, err := p.ReadFrames(fs)
			for _, f := range fs[:k] {
				got = append(got, bytes.Clone(f.Bytes()))
			}
			if err != nil {
				done <- result{got, err}
				return
			}
		}
		done <- result{got, nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadFrames after %d frames: %v", len(r.got), r.err)
		}
		return r.got
	case <-time.After(wait):
		p.Close()
		r := <-done
		t.Fatalf("port received %d of %d frames in %v", len(r.got), n, wait)
		return nil
	}
}

func same(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: frame %d is % x, want % x", what, i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s %d frames, want %d", what, len(got), len(want))
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(wait); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func egressDrops(s *ports.Stats) uint64 {
	var n uint64
	for r := range ports.NumDropReasons {
		n += s.EgressDrops[r].Load()
	}
	return n
}

// isFIFO reports whether path is a FIFO.
func isFIFO(path string) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}
