package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/zswitch/zswitch/control"
)

// TestCaptureWPAN captures a wpan listener's nodes with `zswitch capture`
// and checks the pcapng: link type 230 per interface, the PSDU as sent,
// inbound on the sender and outbound on the receiver; and that tshark, if
// there, decodes it as 802.15.4.
func TestCaptureWPAN(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	wsock := filepath.Join(dir, "w.sock")
	startRun(t, "--log-level", "warn", "--control", ctl,
		"--port", "wpan-listen:unix:"+wsock+",name=w,medium=air",
		"--port", "stream-listen:unix:"+filepath.Join(dir, "eth.sock")+",name=eth")
	waitFile(t, ctl)
	c := control.NewClient(ctl)
	dial := func(name string) net.Conn {
		conn, err := net.Dial("unix", wsock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		waitFor(t, func() bool { _, err := c.Port(name); return err == nil }, name+" never attached")
		return conn
	}
	a, b := dial("w/1"), dial("w/2")

	file := filepath.Join(dir, "w.pcapng")
	done := make(chan error, 1)
	var capErr syncBuffer
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		done <- runCapture([]string{"--control", ctl, "w", "-w", file, "-c", "2", "-q"}, io.Discard, &capErr, stop)
	}()
	waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == 1 && cs[0].Port == "w" }, "the capture never started")

	psdu := []byte{0x41, 0xc8, 0x01, 0xcd, 0xab, 0xff, 0xff, 0x01, 0x00, 'z', 's', 'w'} // data frame, broadcast
	wire := append([]byte{0xf0, byte(len(psdu))}, psdu...)
	if _, err := a.Write(wire); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(wire))
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("w/2 got %x (%v), want %x", got, err, wire)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capture: %v\n%s", err, capErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("capture did not end after 2 packets\n%s", capErr.String())
	}

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{} // packets per interface
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		if intf.LinkType != control.LinkTypeIEEE802154NoFCS {
			t.Errorf("%s: link type %d, want 230", intf.Name, intf.LinkType)
		}
		if !bytes.Equal(data, psdu) || ci.Length != len(psdu) {
			t.Errorf("%s: frame %x (length %d), want %x", intf.Name, data, ci.Length, psdu)
		}
		seen[intf.Name]++
	}
	if len(seen) != 2 || seen["w/1"] != 1 || seen["w/2"] != 1 {
		t.Fatalf("packets per interface: %v, want one on w/1 and one on w/2", seen)
	}
	if cs, _ := c.Captures(); len(cs) != 0 {
		waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == 0 }, "the capture is still listed")
	}

	// A single node, and the whole medium by its name, are captured too.
	for _, port := range []string{"w/1", "air"} {
		cr, err := c.Capture(port)
		if err != nil {
			t.Fatalf("capture %s: %v", port, err)
		}
		waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == 1 && cs[0].Port == port }, port+": not listed")
		if _, err := a.Write(wire); err != nil {
			t.Fatal(err)
		}
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadFull(b, got)
		r, err := pcapgo.NewNgReader(cr, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for n < 2 && (port == "air" || n < 1) {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				t.Fatalf("capture %s: %v", port, err)
			}
			intf, _ := r.Interface(ci.InterfaceIndex)
			if intf.LinkType != control.LinkTypeIEEE802154NoFCS || !bytes.Equal(data, psdu) || port == "w/1" && intf.Name != "w/1" {
				t.Errorf("capture %s: %s link type %d frame %x", port, intf.Name, intf.LinkType, data)
			}
			n++
		}
		cr.Close()
		waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == 0 }, port+": still listed")
	}

	tshark := needTshark(t)
	out, err := tsharkRead(tshark, "-r", file, "-T", "fields", "-E", "separator=,",
		"-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "frame.protocols", "-e", "wpan.dst_pan")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := map[string]bool{"w/1,0x00000001": true, "w/2,0x00000002": true}
	for _, l := range lines {
		f := strings.Split(l, ",")
		if len(f) != 4 || !want[f[0]+","+f[1]] || !strings.Contains(f[2], "wpan") || f[3] != "0xabcd" {
			t.Errorf("tshark line %q: want w/1 inbound or w/2 outbound, decoded as wpan, PAN 0xabcd", l)
		}
	}
	if len(lines) != 2 {
		t.Errorf("tshark: %d packets, want 2:\n%s", len(lines), out)
	}
}
