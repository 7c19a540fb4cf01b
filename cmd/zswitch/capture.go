package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/control"
)

const captureUsage = `Usage: zswitch capture [--control PATH] PORT|MEDIUM|all [-w FILE|-] [-c COUNT]

Captures the frames of PORT (a port, or every connection of a listener) or
of every Ethernet port, live, as pcapng: one interface per port, each
packet marked inbound (received from the port's peer) or outbound (sent
to it). Ctrl-C ends the capture; the file stays valid.

802.15.4 nodes, wpan listeners and whole media (by the medium's name, e.g.
default) are captured as link type 230 (IEEE 802.15.4 without FCS); "all"
covers the Ethernet ports only.

  zswitch capture qemu/1 -w - | wireshark -k -i -
  zswitch capture all -w lab.pcapng -c 1000
  zswitch capture lab -w - | tshark -r -

When the capture falls behind the switch, frames are dropped from the
capture (never from the switch) and counted.
`

// Block types of pcapng that carry a packet.
const (
	pcapngSHB = 0x0A0D0D0A
	pcapngPB  = 0x00000002 // obsolete Packet Block
	pcapngSPB = 0x00000003
	pcapngEPB = 0x00000006
)

// runCapture is `zswitch capture`. It returns after COUNT packets, on
// SIGINT or SIGTERM (or when stop is closed, for tests), when the reader
// of stdout goes away or when the switch ends the stream.
func runCapture(args []string, stdout, stderr io.Writer, stop <-chan struct{}) error {
	fs := flag.NewFlagSet("zswitch capture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ctl := fs.String("control", control.DefaultPath(), "the control socket of zswitch run, `PATH`")
	file := fs.String("w", "-", "write pcapng to `FILE`; - is stdout")
	count := fs.Uint64("c", 0, "stop after `COUNT` packets (0: until Ctrl-C)")
	quiet := fs.Bool("q", false, "no progress line, only the summary")
	fs.Usage = func() {
		fmt.Fprint(stderr, captureUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{errors.New("capture: want one PORT, or all")}
	}
	port := pos[0]
	toStdout := *file == "-" || *file == ""
	if f, ok := stdout.(*os.File); toStdout && ok && isTerminal(f) {
		return usageError{errors.New("capture: not writing pcapng to a terminal; give -w FILE, or pipe it: zswitch capture " + port + " -w - | wireshark -k -i -")}
	}

	// Signals first: an early Ctrl-C still ends cleanly. SIGPIPE is
	// caught so that a viewer that quits gives EPIPE, not death.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sig)

	c := control.NewClient(*ctl)
	cr, err := c.Capture(port)
	if err != nil {
		return ctlError(&ctlOptions{control: *ctl}, err)
	}
	defer cr.Close()

	var out io.Writer = stdout
	var f *os.File
	if !toStdout {
		if f, err = os.Create(*file); err != nil {
			return err
		}
		out = f
	}
	w := bufio.NewWriterSize(out, 64<<10)

	var (
		frames      atomic.Uint64
		interrupted atomic.Bool
		done        = make(chan struct{})
		wg          sync.WaitGroup
	)
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGPIPE {
					continue // the write that caused it fails with EPIPE
				}
			case <-stop:
			case <-done:
				return
			}
			interrupted.Store(true)
			cr.Close() // unblocks the read below
			return
		}
	})
	// Progress: a line every second on a terminal (rewritten in place),
	// every 10 s otherwise; drops are polled from the switch.
	var drops atomic.Uint64
	interval, tty := 10*time.Second, false
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		interval, tty = time.Second, true
	}
	what := "to " + *file
	if toStdout {
		what = "to stdout"
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-done:
				return
			}
			d := captureDrops(c, cr.ID)
			old := drops.Swap(d)
			switch {
			case *quiet:
			case !toStdout && tty:
				fmt.Fprintf(stderr, "\rcapturing %s %s: %d frames, %d dropped\033[K", port, what, frames.Load(), d)
			case !toStdout:
				fmt.Fprintf(stderr, "capturing %s %s: %d frames, %d dropped\n", port, what, frames.Load(), d)
			case d > old:
				fmt.Fprintf(stderr, "zswitch capture: %d frames dropped so far: the reader is too slow\n", d)
			}
		}
	})

	start := time.Now()
	br := bufio.NewReaderSize(cr, 64<<10)
	var (
		blk     []byte
		order   binary.ByteOrder = binary.LittleEndian
		readErr error
		werr    error
	)
	for *count == 0 || frames.Load() < *count {
		var typ uint32
		typ, blk, readErr = readBlock(br, blk, &order)
		if readErr != nil {
			break
		}
		if _, werr = w.Write(blk); werr != nil {
			break
		}
		if typ == pcapngEPB || typ == pcapngSPB || typ == pcapngPB {
			frames.Add(1)
		}
		if br.Buffered() == 0 { // caught up: show it now
			if werr = w.Flush(); werr != nil {
				break
			}
		}
	}
	if werr == nil {
		werr = w.Flush()
	}
	if f != nil {
		if err := f.Close(); werr == nil {
			werr = err
		}
	}
	d := max(drops.Load(), captureDrops(c, cr.ID)) // before Close ends the capture
	cr.Close()

	if tty && !toStdout && !*quiet {
		fmt.Fprint(stderr, "\r\033[K")
	}
	n := frames.Load()
	why := ""
	switch {
	case werr != nil && errors.Is(werr, syscall.EPIPE):
		why, werr = " (the reader closed the pipe)", nil
	case werr != nil:
	case interrupted.Load() || (*count > 0 && n >= *count):
	case readErr == io.EOF || errors.Is(readErr, io.ErrUnexpectedEOF):
		why = " (the switch ended the capture: did zswitch stop?)"
	case readErr != nil:
		why = fmt.Sprintf(" (%v)", readErr)
	}
	fmt.Fprintf(stderr, "zswitch capture: %d %s from %s %s in %s, %d dropped%s\n",
		n, plural(int(n), "frame", "frames"), port, what, time.Since(start).Round(time.Millisecond), d, why)
	if werr != nil {
		return fmt.Errorf("capture: writing %s: %w", *file, werr)
	}
	return nil
}

// captureDrops asks the switch how many frames capture id dropped.
func captureDrops(c *control.Client, id uint64) uint64 {
	cs, err := c.Captures()
	if err != nil {
		return 0
	}
	for _, ci := range cs {
		if ci.ID == id {
			return ci.Drops
		}
	}
	return 0
}

// readBlock reads one whole pcapng block into buf (grown as needed), so
// that whatever is written out ends on a block boundary. The section
// header block sets the byte order of what follows.
func readBlock(r *bufio.Reader, buf []byte, order *binary.ByteOrder) (uint32, []byte, error) {
	hdr, err := r.Peek(12)
	if err != nil {
		if len(hdr) == 0 && err == io.EOF {
			return 0, buf, io.EOF
		}
		if len(hdr) < 8 || err != io.EOF {
			return 0, buf, io.ErrUnexpectedEOF
		}
	}
	typ := binary.LittleEndian.Uint32(hdr)
	if typ == pcapngSHB {
		if len(hdr) < 12 {
			return 0, buf, io.ErrUnexpectedEOF
		}
		switch {
		case binary.LittleEndian.Uint32(hdr[8:]) == 0x1A2B3C4D:
			*order = binary.LittleEndian
		case binary.BigEndian.Uint32(hdr[8:]) == 0x1A2B3C4D:
			*order = binary.BigEndian
		default:
			return 0, buf, errors.New("not a pcapng stream: bad byte-order magic")
		}
	}
	typ = (*order).Uint32(hdr)
	n := (*order).Uint32(hdr[4:])
	if n < 12 || n%4 != 0 || n > 64<<20 {
		return 0, buf, fmt.Errorf("not a pcapng stream: block of %d bytes", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, buf, io.ErrUnexpectedEOF
	}
	return typ, buf, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
