package medium

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/frame"
)

// LinkTypeIEEE802154NoFCS is the pcap link type of 802.15.4 frames without
// FCS (LINKTYPE_IEEE802_15_4_NOFCS), what the UART pipe carries and what
// net-tools' monitor_15_4 writes.
const LinkTypeIEEE802154NoFCS = 230

// captureBuf is how many frames a capture holds before it drops: the
// writer fell behind.
const captureBuf = 4096

// A capturer writes every frame entering the medium to a pcap stream.
// Ingress goroutines offer frames with a non-blocking send; one goroutine
// writes them. ch is never closed: stop waits out the ingress goroutines
// instead (graceWait), then the writer drains it.
type capturer struct {
	ch      chan capRecord
	stop    chan struct{} // closed by stopCapture
	done    chan struct{} // closed when the writer is finished
	written atomic.Uint64
	dropped atomic.Uint64
	users   atomic.Int64 // ingress goroutines inside offer
	stopped atomic.Bool  // set by stopCapture: offer adds nothing
	err     error        // the first write error; set before done is closed
}

type capRecord struct {
	f  *frame.Frame
	ts int64 // unix nanoseconds
}

// ErrCapturing is returned by Capture while a capture runs.
var ErrCapturing = errors.New("medium: a capture is already running")

// Capture writes every frame entering the medium, from any node, to w as
// a pcap file (nanosecond timestamps, link type 230,
// IEEE802_15_4_NOFCS), which Wireshark decodes as 802.15.4. The file
// header is written before Capture returns; records are flushed whenever
// the writer catches up, so a pipe to "wireshark -k -i -" shows them
// live. Frames are shared with the datapath, not copied; when the writer
// falls 4096 frames behind, further ones are dropped and counted
// (CaptureStats). Without a capture, the datapath pays one atomic load per
// batch.
//
// stop ends the capture, writes what is buffered, and returns the first
// write error. Only one capture runs at a time.
func (m *Medium) Capture(w io.Writer) (stop func() error, err error) {
	m.capMu.Lock()
	defer m.capMu.Unlock()
	if m.capture.Load() != nil {
		return nil, ErrCapturing
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d) // nanosecond pcap
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], SlotSize) // snaplen
	binary.LittleEndian.PutUint32(hdr[20:], LinkTypeIEEE802154NoFCS)
	bw.Write(hdr[:])
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	c := &capturer{
		ch:   make(chan capRecord, captureBuf),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	m.pool.Reserve(captureBuf)
	m.capture.Store(c)
	m.wg.Go(func() { c.run(bw) })
	return func() error { return m.stopCaptureOf(c) }, nil
}

// CaptureStats reports the frames the running capture wrote and dropped.
func (m *Medium) CaptureStats() (written, dropped uint64) {
	if c := m.capture.Load(); c != nil {
		return c.written.Load(), c.dropped.Load()
	}
	return 0, 0
}

// offer queues a reference to each frame for the writer, or counts it as
// dropped. The caller holds its own reference throughout.
func (c *capturer) offer(fs []*frame.Frame) {
	c.users.Add(1)
	defer c.users.Add(-1)
	if c.stopped.Load() {
		return
	}
	ts := time.Now().UnixNano()
	for _, f := range fs {
		f.Retain(1)
		select {
		case c.ch <- capRecord{f, ts}:
		default:
			f.Release() // never the last: the caller holds one
			c.dropped.Add(1)
		}
	}
}

func (c *capturer) run(bw *bufio.Writer) {
	defer close(c.done)
	var rec [16]byte
	write := func(r capRecord) {
		if c.err == nil {
			b := r.f.Bytes()
			binary.LittleEndian.PutUint32(rec[0:], uint32(r.ts/1e9))
			binary.LittleEndian.PutUint32(rec[4:], uint32(r.ts%1e9))
			binary.LittleEndian.PutUint32(rec[8:], uint32(len(b)))
			binary.LittleEndian.PutUint32(rec[12:], uint32(len(b)))
			bw.Write(rec[:])
			if _, err := bw.Write(b); err != nil {
				c.err = err
			} else {
				c.written.Add(1)
			}
		} else {
			c.dropped.Add(1)
		}
		r.f.Free()
	}
	for {
		select {
		case r := <-c.ch:
			write(r)
			if len(c.ch) == 0 && c.err == nil {
				c.err = bw.Flush()
			}
		case <-c.stop:
			for {
				select {
				case r := <-c.ch:
					write(r)
				default:
					if c.err == nil {
						c.err = bw.Flush()
					}
					return
				}
			}
		}
	}
}

// stopCaptureOf ends capture c if it still runs.
func (m *Medium) stopCaptureOf(c *capturer) error {
	m.capMu.Lock()
	defer m.capMu.Unlock()
	if !m.capture.CompareAndSwap(c, nil) {
		<-c.done
		return c.err
	}
	// No ingress goroutine adds to c.ch after this: wait for those inside
	// offer, then the writer drains what they added.
	c.stopped.Store(true)
	for c.users.Load() > 0 {
		time.Sleep(10 * time.Microsecond)
	}
	close(c.stop)
	<-c.done
	m.pool.Reserve(-captureBuf)
	return c.err
}

// stopCapture ends the running capture, if any.
func (m *Medium) stopCapture() {
	if c := m.capture.Load(); c != nil {
		m.stopCaptureOf(c)
	}
}
