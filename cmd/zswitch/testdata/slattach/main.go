// Command slattach is the part of slattach(8) that TestSLIPIPModeQEMU
// needs in its guest, whose busybox lacks it: it puts a serial line in raw
// mode, attaches the SLIP line discipline (which makes the kernel create
// an slN interface) and keeps the line open, as the discipline lives only
// while someone holds the tty.
//
// Usage: slattach [/dev/ttyS1]
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const nSLIP = 1 // N_SLIP, from <linux/tty.h>

func main() {
	dev := "/dev/ttyS1"
	if len(os.Args) > 1 {
		dev = os.Args[1]
	}
	if err := attach(dev); err != nil {
		fmt.Fprintf(os.Stderr, "slattach: %s: %v\n", dev, err)
		os.Exit(1)
	}
	fmt.Printf("slattach: %s: SLIP attached\n", dev)
	for {
		time.Sleep(time.Hour)
	}
}

func attach(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("TCGETS: %w", err)
	}
	// cfmakeraw(3), 8N1, 115200 baud, no modem control.
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD | unix.CRTSCTS
	t.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD | unix.B115200
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("TCSETS: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSETD, nSLIP); err != nil {
		return fmt.Errorf("TIOCSETD N_SLIP: %w", err)
	}
	return nil
}
