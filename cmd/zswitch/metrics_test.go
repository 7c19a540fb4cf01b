package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetricsEndpoint runs the real binary with --metrics-addr, passes a
// frame between two stream clients and reads /metrics the way Prometheus
// would.
func TestMetricsEndpoint(t *testing.T) {
	bin := buildZswitch(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "z.sock")
	addr := "127.0.0.1:" + freeTCP(t)
	z := exec.Command(bin, "run", "--metrics-addr", addr,
		"--port", "stream-listen:unix:"+sock+",name=lab",
		"--port", "wpan-pipe:"+dir+"/n1,name=n1",
		"--port", "wpan-listen:unix:"+dir+"/w.sock,name=radio")
	zlog := startProcess(t, z)
	waitFile(t, sock)
	waitFile(t, filepath.Join(dir, "w.sock"))

	a, b := dialStream(t, sock), dialStream(t, sock)
	w, err := net.Dial("unix", filepath.Join(dir, "w.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitFor(t, func() bool { return strings.Contains(zlog.String(), "port=lab/2") }, "the second connection never attached")
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x88, 0xb5})
	writeStream(t, a, f)
	if got := readStream(t, b); !bytes.Equal(got, f) {
		t.Fatalf("b got %x, want %x", got, f)
	}

	url := "http://" + addr + "/metrics"
	want := []string{
		`zswitch_port_rx_frames_total{kind="stream-listen",port="lab/1",segment="ethernet"} 1`,
		`zswitch_port_tx_bytes_total{kind="stream-listen",port="lab/2",segment="ethernet"} 60`,
		`zswitch_port_flooded_frames_total{kind="stream-listen",port="lab/1",segment="ethernet"} 1`,
		`zswitch_port_drops_total{direction="in",kind="stream-listen",port="lab/1",reason="runt",segment="ethernet"} 0`,
		`zswitch_port_link_up{kind="wpan-pipe",port="n1",segment="802.15.4/default"} `,
		`zswitch_port_link_up{kind="wpan-listen",port="radio/1",segment="802.15.4/default"} 1`,
		`zswitch_fdb_learned_total 1`,
		`zswitch_build_info{goversion="go`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	}
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("/metrics:\n%s", body)
		}
	}()
	waitFor(t, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		bs, _ := io.ReadAll(resp.Body)
		body = string(bs)
		for _, s := range want {
			if !strings.Contains(body, s) {
				return false
			}
		}
		return resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain")
	}, "metrics never showed the frame")
	if !strings.Contains(zlog.String(), "serving metrics") {
		t.Errorf("the log does not say where metrics are served")
	}

	z.Process.Signal(syscall.SIGTERM)
	if err := z.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after exit", addr)
	}
}

// TestMetricsAddrInUse: a metrics address that cannot be bound fails the
// start and says why.
func TestMetricsAddrInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out, errs bytes.Buffer
	err = runSwitch([]string{"--metrics-addr", l.Addr().String(),
		"--port", "stream-listen:unix:" + filepath.Join(t.TempDir(), "z.sock")}, &out, &errs, make(chan struct{}))
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("err = %v, want address already in use\n%s", err, errs.String())
	}
}
