package dgram

import (
	"bytes"
	"encoding/binary"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
	"github.com/zswitch/zswitch/ports/internal/mmsg"
	"golang.org/x/sys/unix"
)

// fuzzSlot is the frame slot of the fuzz ports: small, so oversize
// datagrams are cheap.
const fuzzSlot = 256

// fuzzMaxDgrams bounds the datagrams of one execution.
const fuzzMaxDgrams = 64

// fuzzEnd is the datagram the sender sends last. ReadFrames waits while
// whole batches are dropped, so the reader needs a frame after the last
// drop to know everything arrived; unix datagrams keep their order.
var fuzzEnd = []byte("zswitch fuzz: end of input")

// splitDatagrams turns fuzz input into datagrams. Each starts with a
// big-endian uint16 h, n = h&0x03ff its length. With h's top bit set the
// datagram is n synthesized bytes; otherwise it is the next n bytes of data,
// or what is left of them. A last lone byte is ignored. A datagram equal to
// fuzzEnd has its last byte flipped, so only the sender's own ends the input.
func splitDatagrams(data []byte) [][]byte {
	var ds [][]byte
	for len(data) >= 2 && len(ds) < fuzzMaxDgrams {
		h := binary.BigEndian.Uint16(data)
		data = data[2:]
		n := int(h & 0x03ff)
		var d []byte
		if h&0x8000 != 0 {
			d = make([]byte, n)
			for i := range d {
				d[i] = byte(len(ds)) ^ byte(i) ^ byte(h>>8)
			}
		} else {
			n = min(n, len(data))
			d = bytes.Clone(data[:n])
			data = data[n:]
		}
		if bytes.Equal(d, fuzzEnd) {
			d[len(d)-1] ^= 0xff
		}
		ds = append(ds, d)
	}
	return ds
}

// A fuzzPort is a unix dgram port with small slots and its "QEMU", both
// kept for all executions of one fuzz process.
type fuzzPort struct {
	c     *Conn
	q     syscall.RawConn // the QEMU's socket
	to    unix.Sockaddr   // the port's address
	fs    []*frame.Frame
	limit int // the longest datagram delivered: min(slot, MaxFrame)
}

func newFuzzPort(f testing.TB, dir, name string, opt Options) *fuzzPort {
	f.Helper()
	zpath, qpath := filepath.Join(dir, name+"-z.sock"), filepath.Join(dir, name+"-q.sock")
	q, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: qpath, Net: "unixgram"})
	if err != nil {
		f.Fatal(err)
	}
	c, err := OpenUnix(zpath, qpath, opt)
	if err != nil {
		q.Close()
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close(); q.Close() })
	p := &fuzzPort{c: c, to: &unix.SockaddrUnix{Name: zpath}, fs: make([]*frame.Frame, 8), limit: fuzzSlot}
	if opt.MaxFrame > 0 {
		p.limit = min(p.limit, opt.MaxFrame)
	}
	if p.q, err = q.SyscallConn(); err != nil {
		f.Fatal(err)
	}
	p.q.Control(func(fd uintptr) { mmsg.SetBuffers(int(fd), sockBuf) })
	// Connect the port's socket to q. It then takes datagrams from q only,
	// and q's sends escape the max_dgram_qlen limit (10 by default) on its
	// queue, which holds for senders other than the receiver's peer: with
	// room for an execution's datagrams (fuzzMaxDgrams of at most 1023
	// bytes) in q's send buffer, sends never block, and an execution needs
	// no second goroutine and never parks. What ReadFrames does with each
	// datagram is the same.
	rc, err := c.pc.(*net.UnixConn).SyscallConn()
	if err != nil {
		f.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { err = unix.Connect(int(fd), &unix.SockaddrUnix{Name: qpath}) }); err != nil {
		f.Fatal(err)
	}
	if err != nil {
		f.Fatalf("connect: %v", err)
	}
	if got := frame.NewPool(len(p.fs), fuzzSlot).Get(p.fs); got != len(p.fs) {
		f.Fatalf("pool gave %d frames", got)
	}
	return p
}

// send sends d from the QEMU's socket to the port without waiting: a full
// queue is an error (EAGAIN), not a hang.
func (p *fuzzPort) send(d []byte) error {
	var err error
	if cerr := p.q.Control(func(fd uintptr) { err = unix.Sendto(int(fd), d, unix.MSG_DONTWAIT, p.to) }); cerr != nil {
		return cerr
	}
	return err
}

// dropSnapshot is the ingress side of a port's counters.
type dropSnapshot struct {
	rxInvalid, runt, oversize, sum, errors, rxFrames uint64
}

func snapshot(s *ports.Stats) dropSnapshot {
	d := dropSnapshot{
		rxInvalid: s.RxInvalid.Load(),
		runt:      s.IngressDrops[ports.DropRunt].Load(),
		oversize:  s.IngressDrops[ports.DropOversize].Load(),
		errors:    s.Errors.Load(),
		rxFrames:  s.RxFrames.Load(),
	}
	for r := range ports.NumDropReasons {
		d.sum += s.IngressDrops[r].Load()
	}
	return d
}

// FuzzDgramReceive sends the datagrams splitDatagrams makes of its input
// through a unix datagram socket to a port and reads them with ReadFrames,
// len(fs) = 1 + batch%8 at a time, on one of two ports picked by batch's
// top bit: slot-limited (batch size 64) or MaxFrame-limited (MaxFrame 100,
// batch size 3). Every datagram of 1..limit bytes must arrive whole and in
// order; empty ones must be counted as runts and longer ones as oversize,
// and never delivered.
func FuzzDgramReceive(f *testing.F) {
	f.Add([]byte("\x00\x3c"+string(ethFrame(1, 60))), uint8(7))
	f.Add([]byte("\x80\x00\x00\x0e"+string(ethFrame(2, 14))+"\x81\x01"), uint8(0x82))
	dir := f.TempDir()
	fps := [2]*fuzzPort{
		newFuzzPort(f, dir, "a", Options{}),
		newFuzzPort(f, dir, "b", Options{MaxFrame: 100, BatchSize: 3}),
	}
	f.Fuzz(func(t *testing.T, data []byte, batch uint8) { fps[batch>>7].check(t, data, batch) })
}

// check is one execution of FuzzDgramReceive.
func (p *fuzzPort) check(t testing.TB, data []byte, batch uint8) {
	k := 1 + int(batch)%8
	ds := splitDatagrams(data)
	var want [][]byte
	var runts, oversize uint64
	for _, d := range ds {
		switch {
		case len(d) == 0:
			runts++
		case len(d) > p.limit:
			oversize++
		default:
			want = append(want, d)
		}
	}
	before := snapshot(&p.c.Stats)

	// The sends cannot block (see newFuzzPort), so all datagrams are
	// queued before the first read, which then never parks.
	for _, d := range append(ds, fuzzEnd) {
		if err := p.send(d); err != nil {
			t.Fatalf("send %d bytes: %v", len(d), err)
		}
	}
	// Read up to the end marker: then the queue is empty again, and the
	// next execution starts clean even if this one fails. The deadline
	// turns a lost end marker into a failure, not a hang.
	p.c.pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got [][]byte
read:
	for {
		n, err := p.c.ReadFrames(p.fs[:k])
		if n < 0 || n > k {
			t.Fatalf("ReadFrames gave %d frames of %d", n, k)
		}
		for i, fr := range p.fs[:n] {
			if bytes.Equal(fr.Bytes(), fuzzEnd) {
				if i != n-1 {
					t.Fatalf("%d frames after the end marker", n-1-i)
				}
				break read
			}
			got = append(got, bytes.Clone(fr.Bytes()))
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}

	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d (of %d datagrams, limit %d)", len(got), len(want), len(ds), p.limit)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: %d bytes % x, want %d bytes % x", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
	after := snapshot(&p.c.Stats)
	if r, o := after.runt-before.runt, after.oversize-before.oversize; r != runts || o != oversize {
		t.Fatalf("dropped %d runts and %d oversize, want %d and %d", r, o, runts, oversize)
	}
	if d := after.sum - before.sum; d != runts+oversize {
		t.Fatalf("%d ingress drops, want %d", d, runts+oversize)
	}
	if after.rxInvalid != after.sum {
		t.Fatalf("RxInvalid %d != Σ IngressDrops %d", after.rxInvalid, after.sum)
	}
	if after.errors != before.errors || after.rxFrames != before.rxFrames {
		t.Fatalf("Errors %d→%d, RxFrames %d→%d: the port counted more than drops",
			before.errors, after.errors, before.rxFrames, after.rxFrames)
	}
}
