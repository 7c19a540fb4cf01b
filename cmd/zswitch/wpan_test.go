package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWPANMedium runs the real binary with three QEMU-style FIFO-pair
// nodes, one unix-socket node and an Ethernet stream port. A frame from one
// node reaches every other node byte-exact and never the Ethernet side.
func TestWPANMedium(t *testing.T) {
	dir := t.TempDir()
	bin := buildZswitch(t)
	cfg := filepath.Join(dir, "zswitch.yaml")
	os.WriteFile(cfg, []byte("media:\n  default: {pcap: "+dir+"/medium.pcap, seed: 7}\n"), 0o644)
	z := exec.Command(bin, "run", "--config", cfg,
		"--port", "wpan-pipe:"+dir+"/n1", "--port", "wpan-pipe:"+dir+"/n2", "--port", "wpan-pipe:"+dir+"/n3",
		"--port", "wpan-listen:unix:"+dir+"/w.sock,name=sock",
		"--port", "stream-listen:unix:"+dir+"/eth.sock,name=eth")
	zlog := startProcess(t, z)
	waitFile(t, dir+"/eth.sock")

	// QEMU's -serial pipe:PATH reads PATH.in and writes PATH.out, both O_RDWR.
	open := func(p string) *os.File {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	n1out, n2in, n3in := open(dir+"/n1.out"), open(dir+"/n2.in"), open(dir+"/n3.in")
	sock, err := net.Dial("unix", dir+"/w.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	eth, err := net.Dial("unix", dir+"/eth.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer eth.Close()
	for start := time.Now(); !strings.Contains(zlog.String(), "sock/1"); {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the socket node never attached")
		}
		time.Sleep(10 * time.Millisecond)
	}

	psdu := []byte{0x41, 0xc8, 0x01, 0xcd, 0xab, 0xff, 0xff, 0x01, 0x00, 'z', 's', 'w'} // data frame, broadcast
	wire := append([]byte{0xf0, byte(len(psdu))}, psdu...)
	if _, err := n1out.Write(append([]byte{0, 0}, wire...)); err != nil { // leading zeros are skipped
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{"n2": n2in, "n3": n3in, "sock": sock} {
		got := make([]byte, len(wire))
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(r, got); done <- err }()
		select {
		case err := <-done:
			if err != nil || !bytes.Equal(got, wire) {
				t.Fatalf("%s: got %x (%v), want %x", name, got, err, wire)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing arrived", name)
		}
	}
	eth.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _ := eth.Read(make([]byte, 64)); n > 0 {
		t.Fatal("an 802.15.4 frame reached the Ethernet switch")
	}
	z.Process.Signal(syscall.SIGTERM)
	if err := z.Wait(); err != nil {
		t.Fatalf("zswitch exit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "w.sock")); !os.IsNotExist(err) {
		t.Error("w.sock left behind")
	}
	// The medium's capture is a pcap Wireshark reads as IEEE 802.15.4.
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
			t.Fatal("tshark is missing")
		}
		t.Skip("tshark is missing")
	}
	out, err := exec.Command("tshark", "-r", dir+"/medium.pcap", "-T", "fields", "-e", "frame.protocols", "-e", "wpan.dst_pan").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "wpan") || !strings.Contains(string(out), "0xabcd") {
		t.Fatalf("tshark does not see the 802.15.4 frame:\n%s", out)
	}
}
