package zbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// gvproxyVersion is what .ci/deps.sh installs and the results compare with.
const gvproxyVersion = "v0.8.9"

// findGvproxy looks in PATH, then where `go install` puts it.
func findGvproxy() (string, error) {
	if bin, err := exec.LookPath("gvproxy"); err == nil {
		return bin, nil
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "gvproxy")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("gvproxy not installed (.ci/deps.sh, or GOFLAGS= go install github.com/containers/gvisor-tap-vsock/cmd/gvproxy@%s)", gvproxyVersion)
	}
	return bin, nil
}

// startGvproxy runs gvisor-tap-vsock's gvproxy. It accepts a single QEMU
// on -listen-qemu (and exits when that connection closes); further VMs
// attach through its control endpoint: an HTTP request for /connect, after
// which the hijacked connection carries the same QEMU framing. Endpoint 0
// takes the first way, every other endpoint and idle port the second.
func startGvproxy(dir string) (*peer, error) {
	bin, err := findGvproxy()
	if err != nil {
		return nil, err
	}
	qsock, csock := filepath.Join(dir, "gv-qemu.sock"), filepath.Join(dir, "gv-ctl.sock")
	stop, log, err := startProc(exec.Command(bin, "-listen-qemu", "unix://"+qsock, "-listen", "unix://"+csock, "-ssh-port", "-1"))
	if err != nil {
		return nil, err
	}
	var lastConnect time.Time
	connect := func() (net.Conn, error) {
		c, err := dialRetry("unix", csock, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("dial gvproxy control: %w; log:\n%s", err, log)
		}
		if _, err := io.WriteString(c, "POST /connect HTTP/1.1\r\nHost: gvproxy\r\n\r\n"); err != nil {
			c.Close()
			return nil, fmt.Errorf("gvproxy /connect: %w", err)
		}
		lastConnect = time.Now()
		return c, nil
	}
	ver, _ := exec.Command(bin, "-version").CombinedOutput()
	p := &peer{Version: strings.TrimSpace(string(ver)), stop: stop, cant: map[string]string{},
		Note: "forwards only to learned MACs and broadcast (unknown unicast is dropped); every endpoint announces itself with a broadcast first, so unicast between them works"}
	p.attach = func(i int) (*endpoint, error) {
		if i == 0 {
			c, err := dialRetry("unix", qsock, 5*time.Second)
			if err != nil {
				return nil, fmt.Errorf("dial gvproxy: %w; log:\n%s", err, log)
			}
			return fileEndpoint(epName(i), macOf(i), c, 4), nil
		}
		c, err := connect()
		if err != nil {
			return nil, err
		}
		return fileEndpoint(epName(i), macOf(i), c, 4), nil
	}
	p.attachIdle = func(int) (io.Closer, error) { return connect() }
	// Nothing may follow a /connect request until the server has hijacked
	// the connection, or its HTTP reader could swallow the first frame.
	p.settle = func() {
		if d := 100*time.Millisecond - time.Since(lastConnect); d > 0 {
			time.Sleep(d)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", csock)
		}}}
	p.fdbSize = func(int) (int, bool, error) {
		resp, err := hc.Get("http://gvproxy/cam")
		if err != nil {
			return 0, false, fmt.Errorf("gvproxy /cam: %w", err)
		}
		defer resp.Body.Close()
		var cam map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&cam); err != nil {
			return 0, false, fmt.Errorf("gvproxy /cam: %w", err)
		}
		return len(cam), true, nil
	}
	p.stop = func() { hc.CloseIdleConnections(); stop() }
	return p, nil
}
