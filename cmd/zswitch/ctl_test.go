package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zswitch/zswitch/control"
)

// ctlRun runs `zswitch ctl` with the real binary and returns its exit
// status, stdout and stderr.
func ctlRun(t *testing.T, bin, ctl string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"ctl", "--control", ctl}, args...)...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0") // the race runtime's 1 s pause at exit
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errs.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errs.String()
	}
	t.Fatalf("ctl %v: %v", args, err)
	return 0, "", ""
}

// ctlOK runs ctl, fails the test unless it exits 0, and checks that its
// output holds every want.
func ctlOK(t *testing.T, bin, ctl string, args []string, want ...string) string {
	t.Helper()
	code, out, errs := ctlRun(t, bin, ctl, args...)
	if code != 0 {
		t.Fatalf("ctl %v: exit %d\n%s%s", args, code, out, errs)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("ctl %v: output lacks %q:\n%s", args, w, out)
		}
	}
	return out
}

// ctlFails runs ctl and checks that it exits 1 with "zswitch: " and want
// on stderr.
func ctlFails(t *testing.T, bin, ctl string, args []string, want string) {
	t.Helper()
	code, out, errs := ctlRun(t, bin, ctl, args...)
	if code != 1 || !strings.HasPrefix(errs, "zswitch: ") || !strings.Contains(errs, want) {
		t.Fatalf("ctl %v: exit %d, stderr %q, stdout %q; want exit 1 and %q", args, code, errs, out, want)
	}
}

// TestCtlEndToEnd runs the real binary with two stream listeners and a
// control socket, and drives it with `zswitch ctl`.
func TestCtlEndToEnd(t *testing.T) {
	bin := buildZswitch(t)
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	cmd := exec.Command(bin, "run", "--control", ctl,
		"--port", "stream-listen:unix:"+sockA+",name=lab",
		"--port", "stream-listen:unix:"+sockB+",name=lab2")
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFile(t, ctl)
	if fi, err := os.Stat(ctl); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode: %v %v", fi.Mode(), err)
	}

	out := ctlOK(t, bin, ctl, []string{"ports"}, "NAME", "KIND", "LINK", "DROPS", "lab2", "listening (0 accepted)")
	if !strings.HasPrefix(strings.Split(out, "\n")[1], "lab ") {
		t.Fatalf("ports not sorted by name:\n%s", out)
	}

	// A guest connects and sends one frame: lab/1 appears and its MAC is learned.
	a := dialStream(t, sockA)
	src := []byte{0x52, 0x54, 0, 0, 0, 1}
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], src)
	writeStream(t, a, f)
	waitFor(t, func() bool {
		_, out, _ := ctlRun(t, bin, ctl, "fdb")
		return strings.Contains(out, "52:54:00:00:00:01")
	}, "the MAC of lab/1 was never learned")
	ctlOK(t, bin, ctl, []string{"ports"}, "lab/1", "up", "listening (1 accepted)")
	ctlOK(t, bin, ctl, []string{"port", "lab/1"}, "rx:", "1 frames, 60 bytes", "drops in:", "none", "queue:")
	out = ctlOK(t, bin, ctl, []string{"port", "lab/1", "--json"})
	var pi control.PortInfo
	if err := json.Unmarshal([]byte(out), &pi); err != nil || pi.Name != "lab/1" || pi.RxFrames != 1 || !pi.LinkUp {
		t.Fatalf("port --json: %+v %v\n%s", pi, err, out)
	}
	ctlOK(t, bin, ctl, []string{"fdb"}, "MAC", "VLAN", "PORT", "AGE", "STATIC", "lab/1", "no")

	// Run-time options: VLAN and security of one connection.
	ctlOK(t, bin, ctl, []string{"port", "lab/1"}, "config:", "trunk all native 1", "MACs:", "1 learned")
	ctlOK(t, bin, ctl, []string{"set", "lab/1", "vlan=100", "isolated=true"}, "config:", "access 100, isolated", "options:", "isolated=true vlan=100")
	ctlOK(t, bin, ctl, []string{"set", "lab/1", "isolated="}, "access 100")
	if _, out, _ := ctlRun(t, bin, ctl, "port", "lab/1"); strings.Contains(out, "isolated") {
		t.Fatalf("isolated= did not reset the option:\n%s", out)
	}
	ctlFails(t, bin, ctl, []string{"set", "lab/1", "vlan=5000"}, "VLAN \"5000\"")
	ctlFails(t, bin, ctl, []string{"set", "lab/1", "write-timeout=5s"}, "cannot change while the port runs")
	ctlFails(t, bin, ctl, []string{"set", "lab", "vlan=5"}, "lab is a listener; set options on one of its connections")
	ctlOK(t, bin, ctl, []string{"set", "lab/1", "vlan="}, "trunk all native 1")

	// Runtime add and remove of a datagram port.
	spec := "dgram:unix:" + filepath.Join(dir, "d.sock") + ",remote=" + filepath.Join(dir, "r.sock") + ",name=vm3"
	ctlOK(t, bin, ctl, []string{"add", spec}, "added port vm3", "-netdev dgram,id=net0")
	ctlOK(t, bin, ctl, []string{"ports"}, "vm3", "dgram")
	out = ctlOK(t, bin, ctl, []string{"--json", "ports"})
	var ps []control.PortInfo
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 4 {
		t.Fatalf("ports --json: %v %v\n%s", ps, err, out)
	}
	ctlFails(t, bin, ctl, []string{"add", spec}, `name "vm3" is already used`)
	ctlFails(t, bin, ctl, []string{"add", strings.Replace(spec, "name=vm3", "name=vm4", 1)}, "is already used by port vm3")
	ctlFails(t, bin, ctl, []string{"add", "bogus"}, "want KIND:[TRANSPORT:]ADDRESS")
	ctlFails(t, bin, ctl, []string{"add", "dgram:unix:" + filepath.Join(dir, "x.sock")}, "option remote: missing")
	ctlFails(t, bin, ctl, []string{"add", "stream-listen:unix:" + filepath.Join(dir, "no", "such", "dir.sock")}, "no such file or directory")
	ctlOK(t, bin, ctl, []string{"rm", "vm3"}, "removed vm3")
	if _, out, _ := ctlRun(t, bin, ctl, "ports"); strings.Contains(out, "vm3") {
		t.Fatalf("vm3 still listed after rm:\n%s", out)
	}
	ctlFails(t, bin, ctl, []string{"rm", "vm3"}, `no port "vm3"; zswitch ctl ports lists them`)
	ctlFails(t, bin, ctl, []string{"port", "nope"}, `no port "nope"`)

	// Static entries.
	ctlOK(t, bin, ctl, []string{"fdb", "add", "52:54:00:00:00:aa", "lab/1", "--vlan", "5"}, "pinned 52:54:00:00:00:aa vlan 5 to lab/1")
	ctlOK(t, bin, ctl, []string{"fdb"}, "52:54:00:00:00:aa", "yes")
	ctlFails(t, bin, ctl, []string{"fdb", "add", "52:54:00:00:00:ab", "nope"}, `no port "nope"`)
	ctlFails(t, bin, ctl, []string{"fdb", "add", "52:54:00:00:00:ab", "lab"}, "lab is a listener; use one of its connections")
	ctlFails(t, bin, ctl, []string{"fdb", "add", "zz:zz", "lab/1"}, "invalid MAC address")
	ctlOK(t, bin, ctl, []string{"fdb", "flush"}, "flushed 1 entry")
	out = ctlOK(t, bin, ctl, []string{"fdb"}, "52:54:00:00:00:aa")
	if strings.Contains(out, "52:54:00:00:00:01") {
		t.Fatalf("learned entry survived the flush:\n%s", out)
	}
	ctlOK(t, bin, ctl, []string{"fdb", "flush", "lab/1", "--static"}, "flushed 1 entry")
	ctlOK(t, bin, ctl, []string{"fdb", "add", "52:54:00:00:00:ac", "lab/1"}, "in its untagged VLAN")
	ctlOK(t, bin, ctl, []string{"fdb", "rm", "52:54:00:00:00:ac"}, "removed 1 entry")
	ctlFails(t, bin, ctl, []string{"fdb", "rm", "52:54:00:00:00:ac"}, "52:54:00:00:00:ac is not in the MAC table")
	if out := ctlOK(t, bin, ctl, []string{"fdb", "--json"}); strings.TrimSpace(out) != "[]" {
		t.Fatalf("fdb --json after removing all: %q", out)
	}

	// Removing a listener removes its connections.
	ctlOK(t, bin, ctl, []string{"rm", "lab"}, "removed lab, lab/1")
	if _, err := os.Stat(sockA); !os.IsNotExist(err) {
		t.Fatalf("%s still there after rm lab", sockA)
	}
	// The name and address are free again.
	ctlOK(t, bin, ctl, []string{"add", "stream-listen:unix:" + sockA + ",name=lab"}, "added listener lab", "addr.path="+sockA)

	// Command-line mistakes exit 2; no switch at the socket exits 1 with a hint.
	if code, _, errs := ctlRun(t, bin, ctl, "frob"); code != 2 || !strings.Contains(errs, `unknown command "frob"`) {
		t.Fatalf("ctl frob: %d %s", code, errs)
	}
	if code, _, errs := ctlRun(t, bin, ctl, "fdb", "add", "52:54:00:00:00:01"); code != 2 || !strings.Contains(errs, "want MAC PORT") {
		t.Fatalf("ctl fdb add MAC: %d %s", code, errs)
	}
	ctlFails(t, bin, filepath.Join(dir, "none"), []string{"ports"}, "is zswitch running? start it with zswitch run, or pass --control PATH")

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	for _, p := range []string{ctl, sockA, sockB} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after exit", p)
		}
	}
}

// TestControlNoDisturbance: two stream clients exchange frames without a
// pause while other ports are added and removed through the API; not one
// frame is lost or dropped.
func TestControlNoDisturbance(t *testing.T) {
	dir := t.TempDir()
	ctl, sock := filepath.Join(dir, "ctl"), filepath.Join(dir, "lab.sock")
	stop := make(chan struct{})
	done := make(chan error, 1)
	var errs syncBuffer
	go func() {
		done <- runSwitch([]string{"--log-level", "warn", "--control", ctl, "--port", "stream-listen:unix:" + sock + ",name=lab"}, io.Discard, &errs, stop)
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("run: %v\n%s", err, errs.String())
		}
	}()
	waitFile(t, ctl)
	c := control.NewClient(ctl)
	a, b := dialStream(t, sock), dialStream(t, sock)
	waitFor(t, func() bool { _, err := c.Port("lab/2"); return err == nil }, "lab/2 never attached")

	macA := [6]byte{0x52, 0x54, 0, 0, 0, 0xa}
	macB := [6]byte{0x52, 0x54, 0, 0, 0, 0xb}
	const window = 32
	var quit atomic.Bool
	var wg sync.WaitGroup
	var sent, recv [2]atomic.Uint64
	failc := make(chan error, 4)
	stream := func(i int, from, to net.Conn, src, dst [6]byte) {
		wg.Go(func() { // sender
			f := make([]byte, 64)
			copy(f, dst[:])
			copy(f[6:], src[:])
			f[12], f[13] = 0x88, 0xb5
			buf := make([]byte, 4+len(f))
			binary.BigEndian.PutUint32(buf, uint32(len(f)))
			for seq := uint64(0); !quit.Load(); {
				if seq-recv[i].Load() >= window {
					time.Sleep(20 * time.Microsecond)
					continue
				}
				binary.BigEndian.PutUint64(f[14:], seq)
				copy(buf[4:], f)
				if _, err := from.Write(buf); err != nil {
					failc <- err
					return
				}
				seq++
				sent[i].Store(seq)
			}
		})
		wg.Go(func() { // receiver
			var h [4]byte
			f := make([]byte, 2048)
			for want := uint64(0); ; want++ {
				to.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := io.ReadFull(to, h[:]); err != nil {
					if !quit.Load() || want != sent[i].Load() {
						failc <- fmt.Errorf("stream %d: %d of %d frames arrived: %v", i, want, sent[i].Load(), err)
					}
					return
				}
				n := binary.BigEndian.Uint32(h[:])
				if _, err := io.ReadFull(to, f[:n]); err != nil {
					failc <- err
					return
				}
				if got := binary.BigEndian.Uint64(f[14:]); got != want {
					failc <- fmt.Errorf("stream %d: frame %d arrived, want %d", i, got, want)
					return
				}
				recv[i].Store(want + 1)
			}
		})
	}
	stream(0, a, b, macA, macB)
	stream(1, b, a, macB, macA)

	dgram := "dgram:unix:" + filepath.Join(dir, "d.sock") + ",remote=" + filepath.Join(dir, "r.sock") + ",name=churn-d"
	listen := filepath.Join(dir, "churn.sock")
	for i := 0; i < 20; i++ {
		if _, err := c.AddPort(dgram); err != nil {
			t.Fatal(err)
		}
		if _, err := c.AddPort("stream-listen:unix:" + listen + ",name=churn-l"); err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("unix", listen)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { _, err := c.Port("churn-l/1"); return err == nil }, "churn-l/1 never attached")
		if _, err := c.RemovePort("churn-d"); err != nil {
			t.Fatal(err)
		}
		if names, err := c.RemovePort("churn-l"); err != nil || len(names) != 2 {
			t.Fatalf("rm churn-l: %v %v", names, err)
		}
		conn.Close()
	}
	before := [2]uint64{recv[0].Load(), recv[1].Load()}
	time.Sleep(50 * time.Millisecond)
	quit.Store(true)
	wg.Wait()
	close(failc)
	for err := range failc {
		t.Error(err)
	}
	if recv[0].Load() == before[0] || recv[1].Load() < 1000 {
		t.Errorf("traffic stalled: received %d and %d frames", recv[0].Load(), recv[1].Load())
	}
	t.Logf("frames each way: %d, %d", recv[0].Load(), recv[1].Load())
	for i, name := range []string{"lab/1", "lab/2"} {
		p, err := c.Port(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Drops != 0 || p.RxFrames != sent[i].Load() || p.TxFrames != recv[1-i].Load() {
			t.Errorf("%s: rx %d tx %d drops %d (in %v, out %v); sent %d, received %d",
				name, p.RxFrames, p.TxFrames, p.Drops, p.DropsIn, p.DropsOut, sent[i].Load(), recv[1-i].Load())
		}
	}
}

func waitFor(t *testing.T, ok func() bool, msg string) {
	t.Helper()
	for start := time.Now(); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal(msg)
		}
	}
}

// startRun runs `zswitch run` in-process with args until the test ends.
func startRun(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan error, 1)
	var errs syncBuffer
	go func() { done <- runSwitch(args, io.Discard, &errs, stop) }()
	t.Cleanup(func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("run: %v\n%s", err, errs.String())
		}
	})
	return &errs
}

// TestControlWPAN adds and removes an 802.15.4 listener at run time.
func TestControlWPAN(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	startRun(t, "--log-level", "warn", "--control", ctl, "--port", "stream-listen:unix:"+filepath.Join(dir, "eth.sock")+",name=eth")
	waitFile(t, ctl)
	c := control.NewClient(ctl)
	wsock := filepath.Join(dir, "w.sock")
	for range 2 { // twice: removing frees the name and the address
		p, err := c.AddPort("wpan-listen:unix:" + wsock + ",name=w,medium=air")
		if err != nil || !p.Listener || p.Segment != "802.15.4" {
			t.Fatalf("add: %+v %v", p, err)
		}
		conn, err := net.Dial("unix", wsock)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { _, err := c.Port("w/1"); return err == nil }, "w/1 never attached")
		if p, _ := c.Port("w/1"); p.Kind != "wpan-listen" || p.Segment != "802.15.4" {
			t.Fatalf("w/1: %+v", p)
		}
		if err := c.AddStatic("52:54:00:00:00:01", 0, "w/1"); control.StatusOf(err) != 400 || !strings.Contains(err.Error(), "no MAC table") {
			t.Fatalf("static on a wpan node: %v", err)
		}
		// Impairments change at run time on a wpan node; VLANs are not its.
		if p, err := c.SetOptions("w/1", map[string]string{"loss": "10%", "out.delay": "20ms"}); err != nil ||
			p.Config != "in: loss=10%, out: delay=20ms loss=10%" || p.Options["out.delay"] != "20ms" {
			t.Fatalf("impair w/1: %+v %v", p, err)
		}
		if _, err := c.SetOptions("w/1", map[string]string{"vlan": "100"}); control.StatusOf(err) != 400 {
			t.Fatalf("vlan on a wpan node: %v", err)
		}
		names, err := c.RemovePort("w")
		if err != nil || strings.Join(names, ",") != "w,w/1" {
			t.Fatalf("rm w: %v %v", names, err)
		}
		conn.Close()
		if _, err := c.Port("w/1"); control.StatusOf(err) != 404 {
			t.Fatalf("w/1 after rm: %v", err)
		}
	}
}

// TestControlSocketInUse: an explicit --control on a live socket fails
// the run; the default one only logs a warning.
func TestControlSocketInUse(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	path := control.DefaultPath()
	if path != filepath.Join(dir, "zswitch.ctl") {
		t.Fatalf("DefaultPath %s", path)
	}
	srv, err := control.Serve(path, 0, control.Handler(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	port := "stream-listen:unix:" + filepath.Join(dir, "a.sock")
	var out, errs strings.Builder
	if code := run([]string{"run", "--control", path, "--port", port}, &out, &errs); code != 1 || !strings.Contains(errs.String(), "in use by a running process") {
		t.Fatalf("explicit --control in use: exit %d, %s", code, errs.String())
	}
	log := startRun(t, "--port", port)
	waitFor(t, func() bool { return strings.Contains(log.String(), "control API not served") }, "no warning about the default socket")
}
