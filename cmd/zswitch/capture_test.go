package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/control"
)

// needTshark returns tshark's path, or skips the test without it (fails
// it with ZSWITCH_REQUIRE_QEMU=1, which asks for every lab tool).
func needTshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
			t.Fatal("needs tshark (ZSWITCH_REQUIRE_QEMU=1)")
		}
		t.Skip("tshark not installed")
	}
	return p
}

// tsharkFields are the fields checked per packet: interface (port),
// source MAC, length and direction (1 inbound, 2 outbound).
var tsharkFields = []string{"-T", "fields", "-E", "separator=,",
	"-e", "frame.interface_name", "-e", "eth.src", "-e", "frame.len", "-e", "frame.packet_flags_direction"}

func tsharkLines(out string) []string {
	var ls []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if l != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// sortedLines sorts tshark's lines: an outbound record is taken after the
// write, so the peer's answer may be recorded before it.
func sortedLines(out string) string {
	return strings.Join(slices.Sorted(slices.Values(tsharkLines(out))), "\n")
}

// TestCaptureEndToEnd runs the real binary with two stream listeners and
// two raw stream clients exchanging known frames, captures them with
// `zswitch capture` to a file and through a pipe into tshark, and checks
// ports, MACs, lengths and directions; then ends a capture with SIGINT and
// checks that the file is still valid.
func TestCaptureEndToEnd(t *testing.T) {
	tshark := needTshark(t)
	bin := buildZswitch(t)
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	sw := exec.Command(bin, "run", "--control", ctl,
		"--port", "stream-listen:unix:"+sockA+",name=lab",
		"--port", "stream-listen:unix:"+sockB+",name=lab2")
	var swErr syncBuffer
	sw.Stdout, sw.Stderr = io.Discard, &swErr
	if err := sw.Start(); err != nil {
		t.Fatal(err)
	}
	defer sw.Process.Kill()
	waitFile(t, ctl)
	c := control.NewClient(ctl)

	macA := []byte{0x52, 0x54, 0, 0, 0, 0xa}
	macB := []byte{0x52, 0x54, 0, 0, 0, 0xb}
	frame := func(dst, src []byte, n int) []byte {
		f := make([]byte, n)
		copy(f, dst)
		copy(f[6:], src)
		f[12], f[13] = 0x88, 0xb5
		return f
	}
	a, b := dialStream(t, sockA), dialStream(t, sockB)
	for _, name := range []string{"lab/1", "lab2/1"} {
		waitFor(t, func() bool { _, err := c.Port(name); return err == nil }, name+" never attached")
	}
	// Learn both MACs before capturing.
	writeStream(t, a, frame(macB, macA, 60))
	readStream(t, b)
	writeStream(t, b, frame(macA, macB, 70))
	readStream(t, a)
	exchange := func(rounds int) {
		for range rounds {
			writeStream(t, a, frame(macB, macA, 60))
			readStream(t, b)
			writeStream(t, b, frame(macA, macB, 70))
			readStream(t, a)
		}
	}
	captureCmd := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, append([]string{"capture", "--control", ctl}, args...)...)
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
		return cmd
	}
	waitCaptures := func(n int) {
		waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == n }, fmt.Sprintf("%d captures running", n))
	}

	// Capture every port to a file, and lab/1 through a pipe into tshark.
	file := filepath.Join(dir, "all.pcapng")
	all := captureCmd("all", "-w", file, "-c", "8")
	var allErr syncBuffer
	all.Stderr = &allErr
	one := captureCmd("lab/1", "-w", "-", "-c", "4")
	var oneErr, tsOut, tsErr syncBuffer
	one.Stderr = &oneErr
	ts := exec.Command(tshark, append([]string{"-r", "-"}, tsharkFields...)...)
	ts.Stdout, ts.Stderr = &tsOut, &tsErr
	pipe, err := one.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	ts.Stdin = pipe
	for _, cmd := range []*exec.Cmd{all, one, ts} {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitCaptures(2)
	// ctl lists both running captures.
	ls := exec.Command(bin, "ctl", "--control", ctl, "captures")
	ls.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if out, err := ls.CombinedOutput(); err != nil || !strings.Contains(string(out), "ID  PORT") ||
		!strings.Contains(string(out), " all ") || !strings.Contains(string(out), " lab/1 ") {
		t.Fatalf("ctl captures: %v\n%s", err, out)
	}
	exchange(2)
	for _, cmd := range []*exec.Cmd{all, one, ts} {
		if err := waitTimeout(cmd, 20*time.Second); err != nil {
			t.Fatalf("%v: %v\ncapture all: %s\ncapture lab/1: %s\ntshark: %s", cmd.Args, err, allErr.String(), oneErr.String(), tsErr.String())
		}
	}
	inA, outB := "lab/1,52:54:00:00:00:0a,60,0x00000001", "lab2/1,52:54:00:00:00:0a,60,0x00000002"
	inB, outA := "lab2/1,52:54:00:00:00:0b,70,0x00000001", "lab/1,52:54:00:00:00:0b,70,0x00000002"
	wantAll := sortedLines(strings.Repeat(strings.Join([]string{inA, outB, inB, outA}, "\n")+"\n", 2))
	out, err := tsharkRead(tshark, append([]string{"-r", file}, tsharkFields...)...)
	if err != nil || sortedLines(string(out)) != wantAll {
		t.Fatalf("capture all: tshark %v:\n%s\nwant:\n%s", err, out, wantAll)
	}
	wantOne := sortedLines(strings.Repeat(inA+"\n"+outA+"\n", 2))
	if got := sortedLines(tsOut.String()); got != wantOne {
		t.Fatalf("capture lab/1 | tshark -r -:\n%s\nwant:\n%s", got, wantOne)
	}
	if s := allErr.String(); !strings.Contains(s, "8 frames from all to "+file) || !strings.Contains(s, "0 dropped") {
		t.Fatalf("capture all summary: %q", s)
	}
	// One interface block per port, with the port's name and Ethernet link type.
	out, err = tsharkRead(tshark, "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.interface_id", "-e", "frame.encap_type")
	ids := map[string]map[string]bool{}
	for _, l := range tsharkLines(string(out)) {
		f := strings.Split(l, "\t")
		if len(f) != 3 || f[2] != "1" {
			t.Fatalf("interfaces: %q is not NAME, ID, Ethernet (1)", l)
		}
		if ids[f[0]] == nil {
			ids[f[0]] = map[string]bool{}
		}
		ids[f[0]][f[1]] = true
	}
	if err != nil || len(ids) != 2 || len(ids["lab/1"]) != 1 || len(ids["lab2/1"]) != 1 {
		t.Fatalf("interfaces: want one per port: %v %v\n%s", ids, err, out)
	}
	waitCaptures(0) // the captures ended with their clients

	// Ctrl-C ends a capture cleanly: exit 0, a valid file, a summary.
	file2 := filepath.Join(dir, "int.pcapng")
	intr := captureCmd("lab2/1", "-w", file2)
	var intrErr syncBuffer
	intr.Stderr = &intrErr
	if err := intr.Start(); err != nil {
		t.Fatal(err)
	}
	waitCaptures(1)
	exchange(1)
	waitFor(t, func() bool {
		cs, err := c.Captures()
		return err == nil && len(cs) == 1 && cs[0].Frames == 2 && cs[0].Port == "lab2/1"
	}, "2 frames captured on lab2/1")
	time.Sleep(100 * time.Millisecond) // let them reach the file
	intr.Process.Signal(syscall.SIGINT)
	if err := waitTimeout(intr, 10*time.Second); err != nil {
		t.Fatalf("capture after SIGINT: %v\n%s", err, intrErr.String())
	}
	out, err = tsharkRead(tshark, append([]string{"-r", file2}, tsharkFields...)...)
	if want := sortedLines(outB + "\n" + inB); err != nil || sortedLines(string(out)) != want {
		t.Fatalf("interrupted capture: tshark %v:\n%s\nwant:\n%s", err, out, want)
	}
	if s := intrErr.String(); !strings.Contains(s, "2 frames from lab2/1") {
		t.Fatalf("interrupted capture summary: %q", s)
	}
	waitCaptures(0)

	// An unknown port fails with a hint.
	cmd := captureCmd("nope", "-w", filepath.Join(dir, "x.pcapng"))
	var errs bytes.Buffer
	cmd.Stderr = &errs
	if err := cmd.Run(); err == nil || !strings.Contains(errs.String(), `no port "nope"`) {
		t.Fatalf("capture nope: %v %s", err, errs.String())
	}

	sw.Process.Signal(syscall.SIGTERM)
	if err := waitTimeout(sw, 10*time.Second); err != nil {
		t.Fatalf("zswitch exit: %v\n%s", err, swErr.String())
	}
	if s := swErr.String(); !strings.Contains(s, "capture started") || !strings.Contains(s, "capture stopped") {
		t.Fatalf("zswitch log lacks capture start/stop:\n%s", s)
	}
}

// TestCaptureStopsWithSwitch: a capture streaming to stdout ends, with a
// summary, when the switch shuts down.
func TestCaptureStopsWithSwitch(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	stop := make(chan struct{})
	done := make(chan error, 1)
	var runErr syncBuffer
	go func() {
		done <- runSwitch([]string{"--log-level", "warn", "--control", ctl, "--port", "stream-listen:unix:" + filepath.Join(dir, "a.sock") + ",name=lab"}, io.Discard, &runErr, stop)
	}()
	waitFile(t, ctl)
	var out, errs syncBuffer
	capDone := make(chan error, 1)
	go func() { capDone <- runCapture([]string{"--control", ctl, "all"}, &out, &errs, nil) }()
	c := control.NewClient(ctl)
	waitFor(t, func() bool { cs, err := c.Captures(); return err == nil && len(cs) == 1 }, "capture running")
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, runErr.String())
	}
	select {
	case err := <-capDone:
		if err != nil || !strings.Contains(errs.String(), "0 frames from all to stdout") {
			t.Fatalf("capture: %v %q", err, errs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("capture still running after the switch stopped")
	}
}

// tsharkRead runs tshark and returns its standard output; its complaints
// (and its warning about running as root) come with the error.
func tsharkRead(tshark string, args ...string) ([]byte, error) {
	cmd := exec.Command(tshark, args...)
	var errs bytes.Buffer
	cmd.Stderr = &errs
	out, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, errs.String())
	}
	return out, err
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("timed out after %v", d)
	}
}
