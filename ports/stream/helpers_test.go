package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A qemu is the far end of a port as QEMU sees it: a plain stream socket
// speaking the length-prefixed framing.
type qemu struct {
	net.Conn
}

// Send writes one frame with its length header.
func (q *qemu) Send(b []byte) error {
	_, err := q.Write(encode(b))
	return err
}

// Recv reads the next frame, or fails with an error wrapping
// os.ErrDeadlineExceeded after timeout.
func (q *qemu) Recv(timeout time.Duration) ([]byte, error) {
	q.SetReadDeadline(time.Now().Add(timeout))
	var hdr [4]byte
	if _, err := io.ReadFull(q, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(q, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (q *qemu) send(t testing.TB, b ...[]byte) {
	t.Helper()
	if _, err := q.Write(encode(b...)); err != nil {
		t.Fatalf("qemu send: %v", err)
	}
}

func (q *qemu) recv(t testing.TB, timeout time.Duration) []byte {
	t.Helper()
	b, err := q.Recv(timeout)
	if err != nil {
		t.Fatalf("qemu recv: %v", err)
	}
	return b
}

// encode frames the way QEMU does.
func encode(fs ...[]byte) []byte {
	var out []byte
	for _, f := range fs {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

func header(l uint32) []byte { return binary.BigEndian.AppendUint32(nil, l) }

func frames(t testing.TB, n, slot int) []*frame.Frame {
	t.Helper()
	pool := frame.NewPool(n, slot)
	fs := make([]*frame.Frame, n)
	if got := pool.Get(fs); got != n {
		t.Fatalf("pool gave %d frames", got)
	}
	return fs
}

func setFrame(f *frame.Frame, b []byte) { f.SetLen(copy(f.Space(), b)) }

func ethFrame(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0x12, 0x34, byte(i >> 8), 0x08, 0x00})
	return b
}

// listenPair listens on network, connects a plain socket to it and
// returns the accepted port and the socket.
func listenPair(t testing.TB, network string, opt Options) (*Conn, *qemu) {
	t.Helper()
	l := listen(t, network, opt)
	q, err := net.Dial(network, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Accept()
	if err != nil {
		q.Close()
		t.Fatal(err)
	}
	c := p.(*Conn)
	t.Cleanup(func() { c.Close(); q.Close() })
	return c, &qemu{q}
}

func listen(t testing.TB, network string, opt Options) *Listener {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "zsw.sock")
	}
	l, err := Listen(network, addr, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pipePair wraps one end of a net.Pipe in a port, as if accepted: each
// write on the other end arrives as one read, however small.
func pipePair(t testing.TB, opt Options) (*Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	c := accepted("stream pipe", a, opt.withDefaults())
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, b
}

// readFrames reads until it has want frames, an error, or timeout.
func readFrames(t testing.TB, p ports.Port, want, slot int, timeout time.Duration) ([][]byte, error) {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	fs := frames(t, 64, slot)
	go func() {
		var got [][]byte
		for len(got) < want {
			n, err := p.ReadFrames(fs)
			for _, f := range fs[:n] {
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
		return r.got, r.err
	case <-time.After(timeout):
		p.Close() // unblock the reader, so it does not leak
		r := <-done
		t.Fatalf("read %d of %d frames in %v", len(r.got), want, timeout)
		return nil, nil
	}
}

func mustRead(t testing.TB, p ports.Port, want [][]byte) {
	t.Helper()
	got, err := readFrames(t, p, len(want), frame.DefaultSlotSize, 5*time.Second)
	if err != nil {
		t.Fatalf("after %d frames: %v", len(got), err)
	}
	sameFrames(t, got, want)
}

func sameFrames(t testing.TB, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: got %d bytes % x..., want %d bytes % x...", i,
				len(got[i]), got[i][:min(16, len(got[i]))], len(want[i]), want[i][:min(16, len(want[i]))])
		}
	}
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A logRecorder keeps the records logged, for tests that check a message.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// find returns the value of attr key in the first record at level with
// message msg.
func (h *logRecorder) find(level slog.Level, msg, key string) (slog.Value, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Level != level || r.Message != msg {
			continue
		}
		var v slog.Value
		found := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
				return false
			}
			return true
		})
		return v, found
	}
	return slog.Value{}, false
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
