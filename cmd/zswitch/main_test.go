package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
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

// buildZswitch compiles the real binary once per test run.
func buildZswitch(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "zswitch")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunSwitchesAndCleansUp runs the real binary with two stream ports,
// sends a frame between two raw stream clients (what QEMU speaks), stops it
// with SIGTERM and checks the exit status and the socket file.
func TestRunSwitchesAndCleansUp(t *testing.T) {
	bin := buildZswitch(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "z.sock")
	cmd := exec.Command(bin, "run", "--port", "stream-listen:unix:"+sock+",name=lab", "--port", "stream-listen:tcp:127.0.0.1:0,name=tcp", "--stats-interval", "100ms")
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// The printed QEMU flags are the interface a user copies from.
	sc := bufio.NewScanner(stdout)
	var printed strings.Builder
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Give every guest") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	for _, want := range []string{"-netdev stream,id=net0,server=off,addr.type=unix,addr.path=" + sock, "-netdev socket,id=net0,connect=127.0.0.1:"} {
		if !strings.Contains(printed.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, printed.String())
		}
	}

	a, b := dialStream(t, sock), dialStream(t, sock)
	// Both connections must be ports before a frame can reach b.
	for start := time.Now(); !strings.Contains(stderr.String(), "port=lab/2"); {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the second connection never attached:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5})
	writeStream(t, a, frame)
	if got := readStream(t, b); !bytes.Equal(got, frame) {
		t.Fatalf("b got %x, want %x", got, frame)
	}

	for start := time.Now(); !strings.Contains(stderr.String(), `msg=rates ports=2 rx_fps=`); {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no rates line with --stats-interval:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket %s still there after exit (%v)", sock, err)
	}
	for _, want := range []string{"port attached", "port=lab/1", "shutting down", `msg="port totals" port=lab/1 rx_frames=1 rx_bytes=60 tx_frames=0`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestDefaultConfig runs `zswitch run` with no arguments: the embedded
// default listens on /tmp/zswitch.sock and 127.0.0.1:5555.
func TestDefaultConfig(t *testing.T) {
	if c, err := net.Dial("unix", "/tmp/zswitch.sock"); err == nil {
		c.Close()
		t.Skip("a zswitch is already running on /tmp/zswitch.sock")
	}
	stop := make(chan struct{})
	var out, errs bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runSwitch(nil, &out, &errs, stop) }()
	waitFile(t, "/tmp/zswitch.sock")
	c, err := net.Dial("tcp", "127.0.0.1:5555")
	if err != nil {
		t.Fatalf("default tcp listener: %v", err)
	}
	c.Close()
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "addr.path=/tmp/zswitch.sock") || !strings.Contains(out.String(), "connect=127.0.0.1:5555") {
		t.Fatalf("printed flags:\n%s", out.String())
	}
	if _, err := os.Stat("/tmp/zswitch.sock"); !os.IsNotExist(err) {
		t.Fatal("/tmp/zswitch.sock left behind")
	}
}

// TestBadInvocations: wrong command lines exit 2 and say what is wrong.
func TestBadInvocations(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("switch: {queue_len: 3}\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--port", "stream-listen:tcp:127.0.0.1"}, `address: "127.0.0.1" is not HOST:PORT`},
		{[]string{"run", "--port", "tap0"}, "want KIND:[TRANSPORT:]ADDRESS"},
		{[]string{"run", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"run", "extra"}, `unexpected argument "extra"`},
		{[]string{"run", "--config", cfg}, "bad.yaml: switch.queue_len: 3 is outside"},
		{[]string{"run", "--config", "/nonexistent.yaml"}, "/nonexistent.yaml"},
		{[]string{"run", "--metrics-addr", "nope", "--port", "mcast:230.0.0.1:1"}, `metrics_addr: "nope" is not HOST:PORT`},
	} {
		var out, errs bytes.Buffer
		if code := run(tc.args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, errs.String())
		}
		if !strings.Contains(errs.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errs.String(), tc.want)
		}
	}
}

// TestOpenFailureExits1: a port that cannot open (its address is taken)
// is a runtime failure, and the ports opened before it are closed again.
func TestOpenFailureExits1(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sock := filepath.Join(t.TempDir(), "first.sock")
	var out, errs bytes.Buffer
	code := run([]string{"run", "--port", "stream-listen:unix:" + sock, "--port", "stream-listen:tcp:" + l.Addr().String()}, &out, &errs)
	if code != 1 || !strings.Contains(errs.String(), "address already in use") {
		t.Fatalf("exit %d, stderr %s", code, errs.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatal("the first port's socket was left behind")
	}
}

func dialStream(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func writeStream(t *testing.T, c net.Conn, f []byte) {
	t.Helper()
	b := binary.BigEndian.AppendUint32(nil, uint32(len(f)))
	if _, err := c.Write(append(b, f...)); err != nil {
		t.Fatal(err)
	}
}

func readStream(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatal(err)
	}
	f := make([]byte, binary.BigEndian.Uint32(h[:]))
	if _, err := io.ReadFull(c, f); err != nil {
		t.Fatal(err)
	}
	return f
}

func waitFile(t *testing.T, p string) {
	t.Helper()
	for range 500 {
		if _, err := os.Stat(p); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", p)
}

// startProcess starts z, a zswitch command (perhaps under ip netns exec),
// kills it when the test ends, and logs its output if the test failed.
// The test may signal it and wait for it before then.
func startProcess(t *testing.T, z *exec.Cmd) *syncBuffer {
	t.Helper()
	if z.Env == nil {
		z.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0") // the race runtime's 1 s pause at exit
	}
	zlog := new(syncBuffer)
	z.Stdout, z.Stderr = zlog, zlog
	if err := z.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		z.Process.Kill()
		if t.Failed() {
			t.Logf("zswitch log:\n%s", zlog.String())
		}
	})
	return zlog
}
