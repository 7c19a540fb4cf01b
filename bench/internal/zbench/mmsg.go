package zbench

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgBatch is the most datagrams one sendmmsg or recvmmsg moves.
const mmsgBatch = 64

// mmsgSlot is a receive buffer: any generated frame fits, with room to
// spare; a longer datagram comes back truncated and fails the checks.
const mmsgSlot = 2048

// An mmsgWriter sends batches of datagrams on a connected or bound socket
// (UDP, unix datagram, AF_PACKET) with sendmmsg, parked on the netpoller
// when the socket is full. Built once per endpoint; no allocation per call.
type mmsgWriter struct {
	rc   syscall.RawConn
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	// Set by fn for send.
	off, end int
	errno    syscall.Errno
	dropped  uint64 // datagrams the kernel refused (ENOBUFS): lost on the path
	fn       func(fd uintptr) bool
}

func newMmsgWriter(rc syscall.RawConn) *mmsgWriter {
	w := &mmsgWriter{rc: rc, hdrs: make([]unix.Mmsghdr, mmsgBatch), iovs: make([]unix.Iovec, mmsgBatch)}
	for i := range w.hdrs {
		w.hdrs[i].Hdr.Iov = &w.iovs[i]
		w.hdrs[i].Hdr.SetIovlen(1)
	}
	w.fn = w.send1
	return w
}

// send writes every buffer of bs (at most mmsgBatch), one datagram each.
func (w *mmsgWriter) send(bs [][]byte) error {
	for i, b := range bs {
		w.iovs[i].Base = &b[0]
		w.iovs[i].SetLen(len(b))
	}
	w.off, w.end, w.errno = 0, len(bs), 0
	err := w.rc.Write(w.fn)
	clear(w.iovs[:len(bs)])
	if err != nil {
		return err
	}
	if w.errno != 0 {
		return w.errno
	}
	return nil
}

func (w *mmsgWriter) send1(fd uintptr) bool {
	for w.off < w.end {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.off])), uintptr(w.end-w.off), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			w.off += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait until writable
		case unix.ENOBUFS:
			// A device queue (AF_PACKET) refused the first datagram: the
			// path dropped it; it shows as loss at the receiver.
			w.dropped++
			w.off++
		default:
			w.errno = e
			return true
		}
	}
	return true
}

// An mmsgReader receives up to mmsgBatch datagrams per recvmmsg into
// buffers of its own, handed out one by one by frameReader.
type mmsgReader struct {
	rc    syscall.RawConn
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func newMmsgReader(rc syscall.RawConn) *mmsgReader {
	r := &mmsgReader{rc: rc, hdrs: make([]unix.Mmsghdr, mmsgBatch), iovs: make([]unix.Iovec, mmsgBatch), bufs: make([][]byte, mmsgBatch)}
	store := make([]byte, mmsgBatch*mmsgSlot)
	for i := range r.hdrs {
		r.bufs[i] = store[i*mmsgSlot : (i+1)*mmsgSlot]
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(mmsgSlot)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	r.fn = r.recv1
	return r
}

// read waits for at least one datagram and returns how many it took.
func (r *mmsgReader) read() (int, error) {
	r.n, r.errno = 0, 0
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.n, nil
}

// frame returns datagram i of the last read (truncated ones are cut at the slot).
func (r *mmsgReader) frame(i int) []byte { return r.bufs[i][:min(int(r.hdrs[i].Len), mmsgSlot)] }

func (r *mmsgReader) recv1(fd uintptr) bool {
	for {
		for i := range r.hdrs {
			r.hdrs[i].Hdr.Flags = 0
		}
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
			unix.MSG_DONTWAIT|unix.MSG_WAITFORONE, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		}
		r.n, r.errno = int(n), e
		return true
	}
}
