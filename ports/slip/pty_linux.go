package slip

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// OpenPTY returns a port on a new pty pair, for a peer that wants a serial
// device: zswitch keeps the master, and linkPath becomes a symlink to the
// slave (/dev/pts/N), e.g. /tmp/slip.dev for QEMU's -serial /tmp/slip.dev.
// The line is raw: every byte passes unchanged and nothing is echoed.
//
// A symlink already at linkPath (left by an earlier run) is replaced;
// anything else there is an error. Close removes the link if it still
// points to this pty.
//
// The port is down until a peer opens the slave, and again when the peer
// closes it: the pty stays, and the port checks every 100 ms for a peer
// opening it again. Every session starts with a lone End. While no peer
// has the slave open, WriteFrames drops frames as link_down. It counts
// Connects and Disconnects and keeps LinkUp.
func OpenPTY(linkPath string, opt Options) (*Port, error) {
	name := "slip pty:" + linkPath
	if linkPath == "" {
		return nil, fmt.Errorf("%s: no path", name)
	}
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	master, pts, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := publish(pts, linkPath); err != nil {
		master.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rc, err := master.SyscallConn()
	if err != nil {
		master.Close()
		os.Remove(linkPath)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := newPort(name, opt)
	p.release = func() {
		master.Close()
		if target, err := os.Readlink(linkPath); err == nil && target == pts {
			os.Remove(linkPath)
		}
	}
	ep := ptyMaster{master}
	p.keepLinked("open", func(ctx context.Context) (endpoint, error) {
		// Wait for a peer: the master reports POLLHUP while nobody has
		// the slave open.
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-t.C:
			}
			hup, err := peerAway(rc)
			if err != nil {
				return nil, err
			}
			if !hup {
				return ep, nil
			}
			t.Reset(ptyPoll)
		}
	}, opt)
	opt.Logger.Info("port open", "port", name, "pty", pts)
	return p, nil
}

// openPTY makes a pty pair in raw mode and returns its master, in the
// runtime poller so that Close unblocks a read (creack/pty's master
// blocks), and the slave's path.
func openPTY() (*os.File, string, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", &os.PathError{Op: "open", Path: "/dev/ptmx", Err: err}
	}
	fail := func(op string, err error) (*os.File, string, error) {
		unix.Close(fd)
		return nil, "", &os.PathError{Op: op, Path: "/dev/ptmx", Err: err}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil { // unlockpt
		return fail("unlockpt", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN) // ptsname
	if err != nil {
		return fail("ptsname", err)
	}
	// Termios calls on the master act on the slave.
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fail("termios", err)
	}
	makeRaw(t)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fail("termios", err)
	}
	pts := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	// Until the slave has been opened once, the master cannot tell
	// whether anyone has it open. Open and close it, so that the master
	// reports POLLHUP until a peer opens it.
	sfd, err := unix.Open(pts, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fail("open "+pts, err)
	}
	unix.Close(sfd)
	return os.NewFile(uintptr(fd), "/dev/ptmx"), pts, nil
}

// publish points a symlink at linkPath to target, replacing a symlink
// already there in one step.
func publish(target, linkPath string) error {
	fi, err := os.Lstat(linkPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode().Type() != fs.ModeSymlink:
		return fmt.Errorf("%s exists and is not a symlink", linkPath)
	}
	tmp := filepath.Join(filepath.Dir(linkPath), "."+filepath.Base(linkPath)+".tmp"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, linkPath); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// peerAway reports whether no one has the slave open: the master polls
// POLLHUP then, and reads fail with EIO.
func peerAway(rc interface {
	Control(func(fd uintptr)) error
}) (bool, error) {
	var revents int16
	var perr error
	err := rc.Control(func(fd uintptr) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		_, perr = unix.Poll(pfd, 0)
		revents = pfd[0].Revents
	})
	if err == nil && perr != nil && !errors.Is(perr, unix.EINTR) {
		err = perr
	}
	return revents&unix.POLLHUP != 0, err
}

// A ptyMaster is the master as a session's endpoint: a session ends when
// the peer closes the slave, but the pty stays until the port closes.
type ptyMaster struct{ *os.File }

func (ptyMaster) Close() error { return nil }
