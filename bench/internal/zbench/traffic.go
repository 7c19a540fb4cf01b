package zbench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// Frame layout written by the generator (all multi-byte fields big-endian):
//
//	0   dst MAC
//	6   src MAC
//	12  EtherType 0x88b5 (local experimental: no host stack takes it)
//	14  magic "zbn1"
//	18  flow id (uint16): one per run, so stale frames of an earlier run are ignored
//	20  kind (uint16): data, announce, ping, pong
//	22  sequence number (uint64)
//	30  send timestamp (int64 ns since the harness's epoch, monotonic)
//	38  fill: every byte = byte(seq), checked on receipt
const (
	offFlow   = 18
	offKind   = 20
	offSeq    = 22
	offTS     = 30
	hdrLen    = 38
	etherType = 0x88b5
	magic     = 0x7a626e31 // "zbn1"
	maxFrame  = 1 << 16

	kindData     = 0
	kindAnnounce = 1
	kindPing     = 2
	kindPong     = 3
)

// epoch is what timestamps count from; time.Since uses the monotonic clock.
var epoch = time.Now()

func nowNS() int64 { return int64(time.Since(epoch)) }

// Locally administered unicast MACs of the two endpoints.
var (
	macA = [6]byte{0x02, 0x7a, 0x62, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0x7a, 0x62, 0, 0, 0x0b}
)

// fillTemplates[v] is a maxFill-byte run of byte v: the expected fill of a
// frame whose seq&255 == v, compared with one bytes.Equal.
const maxFill = 1514 - hdrLen

var fillTemplates = func() (t [256][]byte) {
	for v := range t {
		t[v] = bytes.Repeat([]byte{byte(v)}, maxFill)
	}
	return t
}()

// endpoint is one emulated guest NIC: a byte stream with a length prefix
// of framing bytes (4: QEMU stream, 2: vde_plug stdio), or a packet fd
// (framing 0: one frame per read/write, e.g. a TAP).
type endpoint struct {
	name    string
	mac     [6]byte
	w       io.Writer
	framing int
	rd      *frameReader
	// setReadDeadline unblocks a reader at the end of a run.
	setReadDeadline func(time.Time) error
	closers         []io.Closer
}

func newEndpoint(name string, mac [6]byte, r io.Reader, w io.Writer, framing int, dl func(time.Time) error, closers ...io.Closer) *endpoint {
	return &endpoint{
		name: name, mac: mac, w: w, framing: framing,
		rd:              &frameReader{r: r, framing: framing, buf: make([]byte, 256<<10)},
		setReadDeadline: dl, closers: closers,
	}
}

// rwDeadliner is a pollable file or connection (socket, TAP fd).
type rwDeadliner interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

// fileEndpoint wraps one pollable file or connection for both ways.
func fileEndpoint(name string, mac [6]byte, f rwDeadliner, framing int) *endpoint {
	return newEndpoint(name, mac, f, f, framing, f.SetReadDeadline, f)
}

func (e *endpoint) close() {
	for _, c := range e.closers {
		c.Close()
	}
}

// frameReader returns frames one by one out of large reads. Its state
// survives runs: a frame cut by the end of one run is finished in the next.
type frameReader struct {
	r        io.Reader
	framing  int
	buf      []byte
	off, end int
	reads    uint64 // Read calls that returned data
	// beforeRead, if set, runs before every Read: the frames handed out so
	// far are all processed (the receiver publishes its progress).
	beforeRead func()
}

var errFraming = errors.New("bad framing")

// next returns the next frame; it stays valid until the following call.
func (r *frameReader) next() ([]byte, error) {
	if r.framing == 0 {
		if r.beforeRead != nil {
			r.beforeRead()
		}
		n, err := r.r.Read(r.buf)
		if n > 0 {
			r.reads++
			return r.buf[:n], nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	for {
		if avail := r.buf[r.off:r.end]; len(avail) >= r.framing {
			var l int
			if r.framing == 4 {
				l = int(binary.BigEndian.Uint32(avail))
			} else {
				l = int(binary.BigEndian.Uint16(avail))
			}
			if l == 0 || l > maxFrame {
				return nil, errFraming
			}
			if len(avail) >= r.framing+l {
				r.off += r.framing + l
				return avail[r.framing : r.framing+l], nil
			}
		}
		if r.off > 0 {
			r.end = copy(r.buf, r.buf[r.off:r.end])
			r.off = 0
		}
		if r.beforeRead != nil {
			r.beforeRead()
		}
		n, err := r.r.Read(r.buf[r.end:])
		if n > 0 {
			r.reads++
			r.end += n
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}

// drain discards whatever waits on the endpoint (frames of an earlier run,
// a hub's copies of our own frames) until it has been quiet for d.
func (e *endpoint) drain(d time.Duration) {
	for {
		e.setReadDeadline(time.Now().Add(d))
		if _, err := e.rd.next(); err != nil {
			break
		}
	}
	e.setReadDeadline(time.Time{})
}

// writeFrameHeader fills the fixed part of a frame.
func writeFrameHeader(f []byte, src, dst [6]byte, flow, kind uint16) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], etherType)
	binary.BigEndian.PutUint32(f[14:], magic)
	binary.BigEndian.PutUint16(f[offFlow:], flow)
	binary.BigEndian.PutUint16(f[offKind:], kind)
}

// putLen writes the transport's length prefix.
func putLen(b []byte, framing, l int) {
	switch framing {
	case 4:
		binary.BigEndian.PutUint32(b, uint32(l))
	case 2:
		binary.BigEndian.PutUint16(b, uint16(l))
	}
}

// parse checks a frame is ours and returns flow, kind and seq.
func parse(f []byte) (flow, kind uint16, seq uint64, ok bool) {
	if len(f) < hdrLen || binary.BigEndian.Uint16(f[12:]) != etherType || binary.BigEndian.Uint32(f[14:]) != magic {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint16(f[offFlow:]), binary.BigEndian.Uint16(f[offKind:]), binary.BigEndian.Uint64(f[offSeq:]), true
}

// sendOne writes a single frame of the given kind (announce), outside any
// measurement.
func (e *endpoint) sendOne(dst [6]byte, flow, kind uint16, size int) error {
	b := make([]byte, e.framing+size)
	putLen(b, e.framing, size)
	writeFrameHeader(b[e.framing:], e.mac, dst, flow, kind)
	_, err := e.w.Write(b)
	return err
}

// sender is a throughput generator: a batch of frames built once in one
// buffer; per batch only seq, timestamp and fill change, and the whole
// batch goes out in one write (framing > 0) or one write per frame (packet
// fds: a TAP takes exactly one frame per write).
type sender struct {
	ep    *endpoint
	size  int
	batch int
	buf   []byte
	slot  int
}

func newSender(ep *endpoint, dst [6]byte, flow uint16, size, batch int) *sender {
	slot := ep.framing + size
	s := &sender{ep: ep, size: size, batch: batch, buf: make([]byte, batch*slot), slot: slot}
	for i := range batch {
		b := s.buf[i*slot:]
		putLen(b, ep.framing, size)
		writeFrameHeader(b[ep.framing:], ep.mac, dst, flow, kindData)
	}
	return s
}

// blast sends for dur (or until stop), returning how many frames went out.
// With window > 0 it keeps at most window frames in flight (sent minus
// what the receiver accounted for, in progress): a forwarding rate without
// tail drops. When the window stays full for stallTimeout the frames in
// flight are written off (they show as loss) so it cannot freeze.
func (s *sender) blast(dur time.Duration, stop *atomic.Bool, window uint64, fc *flowCtl) (sent uint64, err error) {
	t0 := time.Now()
	fill := s.size - hdrLen
	var seq, writtenOff uint64
	for !stop.Load() && time.Since(t0) < dur {
		if window > 0 && !fc.admit(seq+uint64(s.batch), window) {
			writtenOff = seq // a stall: write the frames in flight off
			fc.base.Store(writtenOff)
		}
		ts := nowNS()
		for i := range s.batch {
			f := s.buf[i*s.slot+s.ep.framing : (i+1)*s.slot]
			binary.BigEndian.PutUint64(f[offSeq:], seq+uint64(i))
			binary.BigEndian.PutUint64(f[offTS:], uint64(ts))
			copy(f[hdrLen:], fillTemplates[byte(seq+uint64(i))][:fill])
		}
		if s.ep.framing > 0 {
			if _, err := s.ep.w.Write(s.buf); err != nil {
				return seq, err // a partial write: the receiver counts what arrived
			}
		} else {
			for i := range s.batch {
				if _, err := s.ep.w.Write(s.buf[i*s.slot : (i+1)*s.slot]); err != nil {
					return seq + uint64(i), err
				}
			}
		}
		seq += uint64(s.batch)
	}
	return seq, nil
}

// receiver checks every frame of one flow: intact (length, header, fill),
// in order (seq never goes back), and counts gaps as loss.
type receiver struct {
	ep      *endpoint
	flow    uint16
	size    int
	expect  uint64 // next seq wanted; frames below it are out of order
	got     uint64
	gaps    uint64
	reorder uint64
	corrupt uint64
	foreign uint64 // not ours, another flow, or not data (announces, host noise)
	last    time.Time
	// fc.progress is expect, published before every read.
	fc *flowCtl
}

// run receives until the reader fails (the controller's deadline) or all
// of want (set once the sender is done; 0 = unknown yet) has been accounted.
func (r *receiver) run(want *atomic.Uint64) error {
	rd := r.ep.rd
	fill := r.size - hdrLen
	rd.beforeRead = func() { r.fc.published(r.expect) }
	defer func() { rd.beforeRead = nil }()
	reads := rd.reads
	for {
		f, err := rd.next()
		if err != nil {
			return err
		}
		if rd.reads != reads {
			reads = rd.reads
			if w := want.Load(); w != 0 && r.expect >= w {
				return nil
			}
		}
		flow, kind, seq, ok := parse(f)
		if !ok || flow != r.flow || kind != kindData {
			r.foreign++
			continue
		}
		if len(f) != r.size || !bytes.Equal(f[hdrLen:], fillTemplates[byte(seq)][:fill]) {
			r.corrupt++
			continue
		}
		if seq < r.expect {
			r.reorder++
			continue
		}
		r.gaps += seq - r.expect
		r.expect = seq + 1
		r.got++
		r.last = time.Now()
		if w := want.Load(); w != 0 && r.expect >= w {
			r.fc.published(r.expect)
			return nil
		}
	}
}

// throughput is one run: A blasts to B for dur.
type throughput struct {
	Sent, Got, Lost, Reorder, Corrupt uint64
	Elapsed                           time.Duration
	MallocsPerFrame                   float64
}

// flowCtl lets the sender sleep (not spin: the host's 2 CPUs are shared)
// until the receiver has made room in the window.
type flowCtl struct {
	progress atomic.Uint64 // receiver: next seq wanted
	base     atomic.Uint64 // sender: frames below it written off
	waiting  atomic.Bool
	wake     chan struct{}
	timer    *time.Timer
}

func newFlowCtl() *flowCtl {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &flowCtl{wake: make(chan struct{}, 1), timer: t}
}

// published is called by the receiver with its progress.
func (f *flowCtl) published(p uint64) {
	f.progress.Store(p)
	if f.waiting.Load() {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// admit waits until upTo-window frames are accounted for; false after a
// stall of stallTimeout without progress.
func (f *flowCtl) admit(upTo, window uint64) bool {
	room := func() bool { return upTo <= max(f.progress.Load(), f.base.Load())+window }
	if room() {
		return true
	}
	f.timer.Reset(stallTimeout)
	defer f.timer.Stop()
	for {
		f.waiting.Store(true)
		if room() {
			f.waiting.Store(false)
			return true
		}
		select {
		case <-f.wake:
			f.waiting.Store(false)
			if room() {
				return true
			}
			f.timer.Reset(stallTimeout) // progress, but not enough yet
		case <-f.timer.C:
			f.waiting.Store(false)
			return room()
		}
	}
}

// stallTimeout: see sender.blast.
const stallTimeout = 20 * time.Millisecond

func runThroughput(a, b *endpoint, flow uint16, size int, dur time.Duration, window uint64) (throughput, error) {
	var res throughput
	s := newSender(a, b.mac, flow, size, 64)
	r := &receiver{ep: b, flow: flow, size: size, fc: newFlowCtl()}
	var want atomic.Uint64
	rerr := make(chan error, 1)
	t0 := time.Now()
	go func() { rerr <- r.run(&want) }()
	sent, serr := s.blast(dur, &aborted, window, r.fc)
	want.Store(sent)
	if sent == 0 {
		want.Store(1 << 63)
	}
	// Wait for the receiver to account for everything, or to stall.
	idle := 300 * time.Millisecond
	lastP, lastT := r.fc.progress.Load(), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-rerr:
			break wait
		case <-tick.C:
			if p := r.fc.progress.Load(); p != lastP {
				lastP, lastT = p, time.Now()
			} else if time.Since(lastT) > idle {
				b.setReadDeadline(time.Unix(1, 0))
				err = <-rerr
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = nil
				}
				break wait
			}
		}
	}
	b.setReadDeadline(time.Time{})
	if err == nil {
		err = serr
	}
	res.Sent, res.Got, res.Reorder, res.Corrupt = sent, r.got, r.reorder, r.corrupt
	if sent > r.got {
		res.Lost = sent - r.got
	}
	if !r.last.IsZero() {
		res.Elapsed = r.last.Sub(t0)
	}
	if err != nil {
		return res, fmt.Errorf("%s→%s: %w", a.name, b.name, err)
	}
	return res, nil
}

// rtt is one request-response run: A pings, B answers, one at a time.
type rtt struct {
	Samples []time.Duration // sorted
	Lost    uint64
}

// runRTT does n ping-pongs of size bytes (or stops after maxDur).
func runRTT(a, b *endpoint, flow uint16, size, n int, maxDur time.Duration, samples []int64) (rtt, error) {
	// B: the responder turns every ping of this flow into a pong.
	done := make(chan error, 1)
	go func() {
		out := make([]byte, b.framing+size)
		for {
			f, err := b.rd.next()
			if err != nil {
				done <- err
				return
			}
			fl, kind, _, ok := parse(f)
			if !ok || fl != flow || kind != kindPing || len(f) > size {
				continue
			}
			putLen(out, b.framing, len(f))
			o := out[b.framing : b.framing+len(f)]
			copy(o, f)
			copy(o[0:6], a.mac[:])
			copy(o[6:12], b.mac[:])
			binary.BigEndian.PutUint16(o[offKind:], kindPong)
			if _, err := b.w.Write(out[:b.framing+len(f)]); err != nil {
				done <- err
				return
			}
		}
	}()
	defer func() {
		b.setReadDeadline(time.Unix(1, 0))
		<-done
		b.setReadDeadline(time.Time{})
	}()

	buf := make([]byte, a.framing+size)
	putLen(buf, a.framing, size)
	f := buf[a.framing:]
	writeFrameHeader(f, a.mac, b.mac, flow, kindPing)
	var res rtt
	samples = samples[:0]
	t0 := time.Now()
	for seq := uint64(0); seq < uint64(n) && time.Since(t0) < maxDur; seq++ {
		binary.BigEndian.PutUint64(f[offSeq:], seq)
		copy(f[hdrLen:], fillTemplates[byte(seq)][:size-hdrLen])
		a.setReadDeadline(time.Now().Add(250 * time.Millisecond))
		ts := nowNS()
		binary.BigEndian.PutUint64(f[offTS:], uint64(ts))
		if _, err := a.w.Write(buf); err != nil {
			return res, err
		}
		for {
			g, err := a.rd.next()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				res.Lost++
				break
			}
			if err != nil {
				return res, err
			}
			fl, kind, s, ok := parse(g)
			if !ok || fl != flow || kind != kindPong || s != seq {
				continue
			}
			if len(g) != size || !bytes.Equal(g[hdrLen:], fillTemplates[byte(s)][:size-hdrLen]) {
				return res, fmt.Errorf("pong %d corrupt", s)
			}
			samples = append(samples, nowNS()-int64(binary.BigEndian.Uint64(g[offTS:])))
			break
		}
	}
	a.setReadDeadline(time.Time{})
	sortInt64(samples)
	res.Samples = make([]time.Duration, len(samples))
	for i, v := range samples {
		res.Samples[i] = time.Duration(v)
	}
	return res, nil
}
