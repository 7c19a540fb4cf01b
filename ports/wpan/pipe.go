package wpan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// OpenPipe opens the FIFO pair of QEMU's -serial pipe:path: it reads
// path.out (the guest's TX) and writes path.in (the guest's RX), and
// creates either FIFO if it is missing, with mode 0666 less the umask, as
// mkfifo(1) in Zephyr's build does. A path that exists and is not a FIFO
// is an error.
//
// Both FIFOs are opened read-write and non-blocking, so opening never
// waits for QEMU and a QEMU that exits is no end of file: the port stays
// and carries on with the next QEMU on the same path. Frames written while
// no QEMU reads wait in the FIFO (64 KiB) and, once it is full, are dropped
// as queue_full. Close leaves the FIFOs in place.
func OpenPipe(path string, opt Options) (*Port, error) {
	name := "wpan pipe:" + path
	if path == "" {
		return nil, fmt.Errorf("%s: no path", name)
	}
	opt = opt.withDefaults()
	rd, err := openFIFO(path + ".out")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	wr, err := openFIFO(path + ".in")
	if err != nil {
		rd.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := newPort(name, modePersistent, opt).withLink(fifoPair{rd, wr})
	p.peerUp = true // nothing tells a FIFO's peers apart: LinkUp stays true
	opt.Logger.Info("port open", "port", name, "read", rd.Name(), "write", wr.Name())
	return p, nil
}

// openFIFO creates path as a FIFO if it is missing and opens it
// read-write, non-blocking, in the runtime's poller.
func openFIFO(path string) (*os.File, error) {
	if err := unix.Mkfifo(path, 0o666); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, fmt.Errorf("%s exists and is not a FIFO", path)
	}
	// A non-blocking descriptor goes into the poller: reads park the
	// goroutine, and Close wakes them.
	return os.NewFile(uintptr(fd), path), nil
}

// fifoPair is the link of a pipe port: it reads one FIFO and writes the other.
type fifoPair struct{ r, w *os.File }

func (f fifoPair) Read(b []byte) (int, error)         { return f.r.Read(b) }
func (f fifoPair) Write(b []byte) (int, error)        { return f.w.Write(b) }
func (f fifoPair) SetWriteDeadline(t time.Time) error { return f.w.SetWriteDeadline(t) }

func (f fifoPair) Close() error {
	return errors.Join(f.r.Close(), f.w.Close())
}
