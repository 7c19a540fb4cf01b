package wpan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// OpenPTY makes a pseudo-terminal pair in raw mode for a peer that opens a
// tty, and a symlink to its slave at linkPath (unless linkPath is empty);
// Slave says which /dev/pts entry it is. The port keeps the master. An
// existing symlink at linkPath is replaced; anything else there is an
// error. Close removes the symlink if it is still the port's.
//
// While nobody holds the slave open, reads fail (EIO): the port then looks
// for a peer every 100 ms and LinkUp is false (it turns true when a peer
// sends). Frames written meanwhile wait in the tty's buffer (some 19 KiB,
// handed to the next peer) and, once it is full, are dropped as queue_full
// after WriteTimeout.
func OpenPTY(linkPath string, opt Options) (*Port, error) {
	name := "wpan pty:" + linkPath
	opt = opt.withDefaults()
	f, slave, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if linkPath == "" {
		name = "wpan pty:" + slave
	} else if err := replaceSymlink(slave, linkPath); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := newPort(name, modePersistent, opt).withLink(f)
	p.LinkUp.Store(false) // until a peer sends
	p.slave = slave
	if linkPath != "" {
		p.onClose = func() {
			if t, err := os.Readlink(linkPath); err == nil && t == slave {
				os.Remove(linkPath)
			}
		}
	}
	opt.Logger.Info("port open", "port", name, "pty", slave)
	return p, nil
}

// Slave is the pty slave a port made by OpenPTY serves, e.g. "/dev/pts/3";
// empty for other ports.
func (p *Port) Slave() string { return p.slave }

// openPTY opens a pty master, non-blocking in the poller, with its slave
// in raw mode, and returns the master and the slave's path.
func openPTY() (*os.File, string, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	fail := func(op string, err error) (*os.File, string, error) {
		unix.Close(fd)
		return nil, "", fmt.Errorf("pty %s: %w", op, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return fail("number", err)
	}
	slave := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	// The slave's settings are what the line discipline applies to bytes
	// in both directions: make it raw, 8 bits, no echo, no flow control.
	// They outlive this descriptor: the master keeps the pair.
	sfd, err := unix.Open(slave, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open slave", err)
	}
	err = makeRaw(sfd)
	unix.Close(sfd)
	if err != nil {
		return fail("raw mode", err)
	}
	if err := makeRaw(fd); err != nil {
		return fail("raw mode", err)
	}
	return os.NewFile(uintptr(fd), "ptmx:"+slave), slave, nil
}

// makeRaw sets a tty to raw mode, as cfmakeraw(3) does.
func makeRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// replaceSymlink points linkPath at target, replacing a symlink there but
// nothing else.
func replaceSymlink(target, linkPath string) error {
	fi, err := os.Lstat(linkPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSymlink:
		return fmt.Errorf("%s exists and is not a symlink", linkPath)
	default:
		if err := os.Remove(linkPath); err != nil {
			return err
		}
	}
	return os.Symlink(target, linkPath)
}
