package medium

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports/wpan"
)

// A fakeQEMU plays QEMU's side of a UART pipe node: it writes frames in
// the F0/LEN framing and decodes what it reads.
type fakeQEMU struct {
	r   interface{ Read([]byte) (int, error) }
	w   interface{ Write([]byte) (int, error) }
	rd  func(time.Time) error
	cls []func() error
	dec wpan.Decoder
	fs  []*frame.Frame
	got [][]byte
	buf []byte
}

func newFakeQEMU(r interface{ Read([]byte) (int, error) }, w interface{ Write([]byte) (int, error) }, rd func(time.Time) error, cls ...func() error) *fakeQEMU {
	fs := make([]*frame.Frame, 16)
	frame.NewPool(len(fs), SlotSize).Get(fs)
	return &fakeQEMU{r: r, w: w, rd: rd, cls: cls, fs: fs, buf: make([]byte, 4096)}
}

func (q *fakeQEMU) close() {
	for _, c := range q.cls {
		c()
	}
}

func (q *fakeQEMU) send(t *testing.T, psdus ...[]byte) {
	t.Helper()
	var b []byte
	for _, p := range psdus {
		b = wpan.AppendFrame(b, p)
	}
	if _, err := q.w.Write(b); err != nil {
		t.Fatal(err)
	}
}

// recv reads until it holds n frames or 5 s pass.
func (q *fakeQEMU) recv(t *testing.T, n int) [][]byte {
	t.Helper()
	q.rd(time.Now().Add(5 * time.Second))
	for len(q.got) < n {
		k, err := q.r.Read(q.buf)
		for b := q.buf[:k]; len(b) > 0; {
			m, used, _, _ := q.dec.Decode(b, q.fs)
			for _, f := range q.fs[:m] {
				q.got = append(q.got, bytes.Clone(f.Bytes()))
			}
			b = b[used:]
		}
		if err != nil {
			t.Fatalf("fake QEMU read %d of %d frames: %v", len(q.got), n, err)
		}
	}
	out := q.got[:n]
	q.got = q.got[n:]
	return out
}

// TestQEMUNodes joins three FIFO pair nodes and one unix socket node, each
// with a fake QEMU on the far side, and has every node send a frame.
func TestQEMUNodes(t *testing.T) {
	dir := t.TempDir()
	m := New(Config{})
	defer m.Close()
	var qs []*fakeQEMU
	for i := 1; i <= 3; i++ {
		path := filepath.Join(dir, fmt.Sprintf("ip-stack-node%d", i))
		p, err := wpan.OpenPipe(path, wpan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		attach(t, m, fmt.Sprint(i), p)
		// QEMU's side: reads PATH.in, writes PATH.out, both O_RDWR.
		in, err := os.OpenFile(path+".in", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(path+".out", os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, newFakeQEMU(in, out, in.SetReadDeadline, in.Close, out.Close))
	}
	sock := filepath.Join(dir, "slip.sock")
	l, err := wpan.Listen("unix", sock, wpan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachListener("sock", l); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock) // QEMU -serial unix:PATH is the client
	if err != nil {
		t.Fatal(err)
	}
	qs = append(qs, newFakeQEMU(c, c, c.SetReadDeadline, c.Close))
	defer func() {
		for _, q := range qs {
			q.close()
		}
	}()
	waitFor(t, "4 nodes", func() bool { return len(m.Nodes()) == 4 })
	if _, ok := m.Node("sock/1"); !ok {
		t.Fatalf("the socket node is not named sock/1: %v", nodeNames(m))
	}
	for i, q := range qs {
		q.send(t, psdu(uint32(i), 20+i))
	}
	for i, q := range qs {
		got := q.recv(t, len(qs)-1)
		seen := map[uint32]bool{}
		for _, b := range got {
			seen[seqOf(b)] = true
		}
		for j := range qs {
			if seen[uint32(j)] != (i != j) {
				t.Fatalf("node %d got frames %v", i, seen)
			}
		}
	}
	// Garbage from one QEMU is counted there and nowhere else.
	qs[0].w.Write([]byte("boot log\r\n"))
	qs[0].send(t, psdu(99, 9))
	for _, q := range qs[1:] {
		if got := q.recv(t, 1); seqOf(got[0]) != 99 {
			t.Fatalf("got %d, want 99", seqOf(got[0]))
		}
	}
	n1, _ := m.Node("1")
	if n1.Stats().RxInvalid.Load() != 1 {
		t.Fatalf("node 1 rx_invalid %d, want 1 garbage run", n1.Stats().RxInvalid.Load())
	}
	// The socket's QEMU leaves: its node goes, the others stay.
	qs[3].close()
	waitFor(t, "sock/1 gone", func() bool { return len(m.Nodes()) == 3 })
	checkIdentities(t, m.Nodes()...)
}

func nodeNames(m *Medium) []string {
	var s []string
	for _, n := range m.Nodes() {
		s = append(s, n.Name)
	}
	return s
}

// TestCapture captures frames from two nodes and has tshark decode the
// file as IEEE 802.15.4.
func TestCapture(t *testing.T) {
	m := New(Config{})
	defer m.Close()
	a, b := newMemPort(), newMemPort()
	attach(t, m, "a", a)
	attach(t, m, "b", b)
	file := filepath.Join(t.TempDir(), "wpan.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop, err := m.Capture(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Capture(f); err != ErrCapturing {
		t.Fatalf("second Capture: %v", err)
	}
	for k := range 10 {
		a.inject(psdu(uint32(k), 20))
	}
	b.inject([]byte{0x02, 0x00, 0x2A}) // an ACK
	waitFor(t, "delivery", func() bool { return a.n.Load() == 1 && b.n.Load() == 10 })
	waitFor(t, "captured", func() bool { w, _ := m.CaptureStats(); return w == 11 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	a.inject(psdu(100, 20)) // after stop: not captured
	waitFor(t, "delivery", func() bool { return b.n.Load() == 11 })

	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
			t.Fatal("tshark not installed")
		}
		t.Skip("tshark not installed")
	}
	cmd := exec.Command(tshark, "-r", file, "-T", "fields", "-e", "wpan.frame_type", "-e", "wpan.seq_no")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var data, acks int
	for _, l := range lines {
		typ, _, _ := strings.Cut(l, "\t")
		switch v, _ := strconv.ParseInt(typ, 0, 8); v {
		case 1:
			data++
		case 2:
			acks++
		}
	}
	if len(lines) != 11 || data != 10 || acks != 1 {
		t.Fatalf("tshark decoded %d frames, %d data and %d acks; want 11, 10, 1:\n%s", len(lines), data, acks, out)
	}
}
