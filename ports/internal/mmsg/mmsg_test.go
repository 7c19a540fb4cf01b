package mmsg

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func udpPair(t testing.TB) (a, b *net.UDPConn) {
	t.Helper()
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	a, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	b, err = net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UDPConn{a, b} {
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func rawConn(t testing.TB, c syscall.Conn) syscall.RawConn {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func TestBatchRoundTrip(t *testing.T) {
	a, b := udpPair(t)
	const n = 16
	w := NewWriter(rawConn(t, a), n, Sockaddr(addrOf(b)))
	r := NewReader(rawConn(t, b), n, true)
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{byte(i)}, 10+i)
		w.SetBuf(i, out[i])
	}
	if sent, err := w.Write(n); sent != n || err != nil {
		t.Fatalf("Write: %d, %v", sent, err)
	}
	in := make([][]byte, n)
	got := 0
	for got < n {
		for i := range n {
			in[i] = make([]byte, 100)
			r.SetBuf(i, in[i])
		}
		m, err := r.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			if !bytes.Equal(in[i][:r.Len(i)], out[got]) || r.Truncated(i) {
				t.Fatalf("datagram %d: % x (trunc %v), want % x", got, in[i][:r.Len(i)], r.Truncated(i), out[got])
			}
			if from, ok := AddrPort(r.Name(i)); !ok || from != addrOf(a) {
				t.Fatalf("source %v %v, want %v", from, ok, addrOf(a))
			}
			if !SameInet(r.Name(i), Sockaddr(addrOf(a)), false) {
				t.Fatal("SameInet: source differs from the sender's sockaddr")
			}
			got++
		}
	}
}

func TestTruncatedIsFlagged(t *testing.T) {
	a, b := udpPair(t)
	w := NewWriter(rawConn(t, a), 2, Sockaddr(addrOf(b)))
	w.SetBuf(0, make([]byte, 200))
	w.SetBuf(1, make([]byte, 64))
	if sent, err := w.Write(2); sent != 2 || err != nil {
		t.Fatalf("Write: %d, %v", sent, err)
	}
	r := NewReader(rawConn(t, b), 2, false)
	got := 0
	for got < 2 {
		for i := range 2 {
			r.SetBuf(i, make([]byte, 64))
		}
		m, err := r.Read(2)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			want := got == 0
			if r.Truncated(i) != want || r.Len(i) != 64 {
				t.Fatalf("datagram %d: truncated %v len %d", got, r.Truncated(i), r.Len(i))
			}
			if r.Name(i) != nil {
				t.Fatal("Name without names")
			}
			got++
		}
	}
}

// unixgramPair binds two unix datagram sockets and returns them and b's
// raw address, to send to from a.
func unixgramPair(t *testing.T) (a, b *net.UnixConn, to []byte) {
	t.Helper()
	dir := t.TempDir()
	pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	a, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: pa, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: pb, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if to, err = SockaddrUnix(pb); err != nil {
		t.Fatal(err)
	}
	return a, b, to
}

// TestPartialSend sends more datagrams than a unix datagram receiver queues
// (net.unix.max_dgram_qlen, 10 by default): sendmmsg stops early, the Writer
// parks and resumes, and every datagram arrives once, in order.
func TestPartialSend(t *testing.T) {
	a, b, to := unixgramPair(t)
	const n = 200
	w := NewWriter(rawConn(t, a), n, to)
	for i := range n {
		w.SetBuf(i, []byte(fmt.Sprint(i)))
	}
	done := make(chan error, 1)
	go func() {
		r := NewReader(rawConn(t, b), 8, false)
		buf := make([][]byte, 8)
		next := 0
		for next < n {
			for i := range buf {
				buf[i] = make([]byte, 16)
				r.SetBuf(i, buf[i])
			}
			m, err := r.Read(8)
			if err != nil {
				done <- err
				return
			}
			for i := range m {
				if s := string(buf[i][:r.Len(i)]); s != fmt.Sprint(next) {
					done <- fmt.Errorf("got %q, want %d", s, next)
					return
				}
				next++
			}
		}
		done <- nil
	}()
	if sent, err := w.Write(n); sent != n || err != nil {
		t.Fatalf("Write: %d, %v", sent, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestTryWriteStopsAtFullSocket: where Write parks (TestPartialSend),
// TryWrite returns at once with what the receiver's queue took, in order,
// and no error; the rest is for the next call.
func TestTryWriteStopsAtFullSocket(t *testing.T) {
	a, b, to := unixgramPair(t)
	const n = 200
	w := NewWriter(rawConn(t, a), n, to)
	for i := range n {
		w.SetBuf(i, []byte(fmt.Sprint(i)))
	}
	sent, err := w.TryWrite(n)
	if err != nil || sent == 0 || sent >= n {
		t.Fatalf("TryWrite of %d to a receiver that does not read: %d, %v; want a part, no error", n, sent, err)
	}
	buf := make([]byte, 16)
	b.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for i := 0; ; i++ {
		m, err := b.Read(buf)
		if err != nil {
			if i != sent {
				t.Fatalf("received %d datagrams, TryWrite said %d: %v", i, sent, err)
			}
			break
		}
		if got := string(buf[:m]); got != fmt.Sprint(i) {
			t.Fatalf("datagram %d is %q", i, got)
		}
	}
	// Drained, the queue takes more: TryWrite goes on from where it stopped.
	for i := range n - sent {
		w.SetBuf(i, []byte(fmt.Sprint(sent+i)))
	}
	if more, err := w.TryWrite(1); more != 1 || err != nil {
		t.Fatalf("TryWrite after the receiver drained: %d, %v", more, err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m, err := b.Read(buf); err != nil || string(buf[:m]) != fmt.Sprint(sent) {
		t.Fatalf("next datagram %q, %v; want %d", buf[:m], err, sent)
	}
}

func TestWriteErrorStopsAtFailingMessage(t *testing.T) {
	dir := t.TempDir()
	a, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "a"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	to, _ := SockaddrUnix(filepath.Join(dir, "absent"))
	w := NewWriter(rawConn(t, a), 4, to)
	for i := range 4 {
		w.SetBuf(i, []byte{1})
	}
	sent, err := w.Write(4)
	if sent != 0 || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Write to a missing path: %d, %v; want 0, ENOENT", sent, err)
	}
	if sent, err := w.TryWrite(4); sent != 0 || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("TryWrite to a missing path: %d, %v; want 0, ENOENT", sent, err)
	}
}

func TestReadAfterCloseUnblocks(t *testing.T) {
	a, _ := udpPair(t)
	r := NewReader(rawConn(t, a), 4, false)
	r.SetBuf(0, make([]byte, 10))
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(1)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
}

func TestSockaddr(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5555", "[::1]:6000", "230.0.0.1:1234"} {
		ap := netip.MustParseAddrPort(s)
		if got, ok := AddrPort(Sockaddr(ap)); !ok || got != ap {
			t.Errorf("AddrPort(Sockaddr(%v)) = %v, %v", ap, got, ok)
		}
	}
	if n := len(Sockaddr(netip.MustParseAddrPort("[::ffff:127.0.0.1]:1"))); n != unix.SizeofSockaddrInet4 {
		t.Errorf("mapped address gave a %d-byte sockaddr", n)
	}
	a := Sockaddr(netip.MustParseAddrPort("127.0.0.1:1"))
	b := Sockaddr(netip.MustParseAddrPort("127.0.0.2:1"))
	c := Sockaddr(netip.MustParseAddrPort("127.0.0.1:2"))
	if SameInet(a, b, false) || !SameInet(a, b, true) || SameInet(a, c, true) || !SameInet(a, a, false) {
		t.Error("SameInet")
	}
	if _, err := SockaddrUnix(string(make([]byte, 200))); err == nil {
		t.Error("SockaddrUnix accepted a 200-byte path")
	}
	if sa, err := SockaddrUnix("@abs"); err != nil || sa[2] != 0 || len(sa) != 2+4 {
		t.Errorf("abstract: % x, %v", sa, err)
	}
}

func TestZeroAllocs(t *testing.T) {
	a, b := udpPair(t)
	const n = 32
	w := NewWriter(rawConn(t, a), n, Sockaddr(addrOf(b)))
	r := NewReader(rawConn(t, b), n, true)
	out, in := make([]byte, 64), make([][]byte, n)
	for i := range in {
		in[i] = make([]byte, 2048)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := range n {
			w.SetBuf(i, out)
		}
		if sent, err := w.Write(n); sent != n || err != nil {
			t.Fatalf("Write: %d, %v", sent, err)
		}
		for got := 0; got < n; {
			for i := range n {
				r.SetBuf(i, in[i])
			}
			m, err := r.Read(n - got)
			if err != nil {
				t.Fatal(err)
			}
			got += m
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per batch, want 0", allocs)
	}
}

func BenchmarkUDP(b *testing.B) {
	for _, size := range []int{64, 1514} {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("%dB/batch%d", size, batch), func(b *testing.B) {
				x, y := udpPair(b)
				w := NewWriter(rawConn(b, x), batch, Sockaddr(addrOf(y)))
				r := NewReader(rawConn(b, y), batch, false)
				out, in := make([]byte, size), make([][]byte, batch)
				for i := range in {
					in[i] = make([]byte, 2048)
				}
				b.ReportAllocs()
				b.SetBytes(int64(size * batch))
				for b.Loop() {
					for i := range batch {
						w.SetBuf(i, out)
					}
					if _, err := w.Write(batch); err != nil {
						b.Fatal(err)
					}
					for got := 0; got < batch; {
						for i := range batch {
							r.SetBuf(i, in[i])
						}
						m, err := r.Read(batch - got)
						if err != nil {
							b.Fatal(err)
						}
						got += m
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "datagrams/s")
			})
		}
	}
}

func TestControl(t *testing.T) {
	a, b := udpPair(t)
	rcb := rawConn(t, b)
	var serr error
	rcb.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTTL, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	const n = 3
	w := NewWriter(rawConn(t, a), n, Sockaddr(addrOf(b)))
	for i := range n {
		w.SetBuf(i, []byte{byte(i)})
	}
	if sent, err := w.Write(n); sent != n || err != nil {
		t.Fatalf("Write: %d, %v", sent, err)
	}
	r := NewReader(rcb, n, false)
	if r.Control(0) != nil {
		t.Fatal("Control without EnableControl is not nil")
	}
	r.EnableControl(unix.CmsgSpace(4))
	for got := 0; got < n; {
		for i := range n {
			r.SetBuf(i, make([]byte, 8))
		}
		m, err := r.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			h, data, _, err := unix.ParseOneSocketControlMessage(r.Control(i))
			if err != nil || h.Level != unix.IPPROTO_IP || h.Type != unix.IP_TTL || len(data) < 4 {
				t.Fatalf("datagram %d: control % x: %+v, %v; want an IP_TTL message", got, r.Control(i), h, err)
			}
			got++
		}
	}
}
