package slip

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenTTY returns a port on a serial device, such as /dev/ttyUSB0 to a
// board running Zephyr's SLIP driver. The line is set to raw 8N1 at baud,
// with no flow control and modem lines ignored (CLOCAL).
//
// It opens the device again whenever it fails or goes away (a USB
// adapter unplugged), waiting from Options.BackoffMin up to BackoffMax
// between attempts, and starts every session with a lone End. It returns
// at once; only bad arguments are errors. While the device is away,
// WriteFrames drops frames as link_down. It counts Connects, Disconnects,
// failed opens (Errors) and keeps LinkUp.
func OpenTTY(device string, baud int, opt Options) (*Port, error) {
	name := "slip tty:" + device
	if device == "" {
		return nil, fmt.Errorf("%s: no device", name)
	}
	if baud <= 0 {
		return nil, fmt.Errorf("%s: bad baud rate %d", name, baud)
	}
	if err := opt.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	opt = opt.withDefaults()
	p := newPort(name, opt)
	p.keepLinked("open", func(context.Context) (endpoint, error) {
		return openTTY(device, baud)
	}, opt)
	opt.Logger.Info("port open", "port", name, "baud", baud)
	return p, nil
}

// openTTY opens device non-blocking, so that it joins the runtime poller
// (deadlines work, Close unblocks a read), and configures the line.
func openTTY(device string, baud int) (*os.File, error) {
	fd, err := unix.Open(device, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: device, Err: err}
	}
	if err := setLine(fd, baud); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "termios", Path: device, Err: err}
	}
	// Bytes a board sent while nobody listened are stale.
	unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
	return os.NewFile(uintptr(fd), device), nil
}

// baudCodes are the rates with a termios code of their own; others go
// through BOTHER, which serial drivers may round.
var baudCodes = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600,
	1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000,
	2000000: unix.B2000000, 2500000: unix.B2500000, 3000000: unix.B3000000,
	3500000: unix.B3500000, 4000000: unix.B4000000,
}

// setLine puts the tty at fd in raw mode at baud (both directions), with
// termios2 so that any rate can be asked for.
func setLine(fd, baud int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS2)
	if err != nil {
		return err
	}
	makeRaw(t)
	code, ok := baudCodes[baud]
	if !ok {
		code = unix.BOTHER
	}
	t.Cflag &^= unix.CBAUD | unix.CIBAUD // CIBAUD 0: input at the output rate
	t.Cflag |= code
	t.Ispeed, t.Ospeed = uint32(baud), uint32(baud)
	return unix.IoctlSetTermios(fd, unix.TCSETS2, t)
}

// makeRaw sets t as cfmakeraw does, and lets the line receive without
// modem control: every byte passes unchanged, nothing is echoed, no
// signal characters, no flow control.
func makeRaw(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
}
