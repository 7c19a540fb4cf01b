package zbench

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"github.com/zswitch/zswitch/control"
	"golang.org/x/sys/unix"
)

// zsTransport is how the endpoints attach to zswitch.
type zsTransport string

const (
	zsUnix      zsTransport = "unix"       // stream-listen on a unix socket, one QEMU stream client per endpoint
	zsTCP       zsTransport = "tcp"        // the same on 127.0.0.1
	zsUnixBP    zsTransport = "unix-bp"    // zsUnix with backpressure=on: senders wait for a slow receiver
	zsDgramUnix zsTransport = "dgram-unix" // one dgram:unix port per endpoint (QEMU -netdev dgram, unix)
	zsDgramUDP  zsTransport = "dgram-udp"  // one dgram:udp port per endpoint on 127.0.0.1
	zsTAP       zsTransport = "tap"        // one tap: port per endpoint; the generator is the TAP's kernel side
)

// zswitchMACTable is the MAC table size zswitch runs with: room for the
// 100 000-MAC workload (the default, 65 536, would stop learning there).
const zswitchMACTable = 131072

var (
	zswitchMu  sync.Mutex
	zswitchBin string // built once per process, or Options.ZswitchBin
)

// buildZswitch builds ./cmd/zswitch from the working tree (uncommitted
// changes included) into dir, once per process (again if a later run
// finds the earlier run's directory removed).
func buildZswitch(dir string) (string, error) {
	zswitchMu.Lock()
	defer zswitchMu.Unlock()
	if zswitchBin != "" {
		if _, err := os.Stat(zswitchBin); err == nil {
			return zswitchBin, nil
		}
		// Built into an earlier run's directory, which is gone: build again.
	}
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "zswitch")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/zswitch")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/zswitch: %v\n%s", err, out)
	}
	zswitchBin = bin
	return bin, nil
}

// startZswitch runs zswitch with a MAC table big enough for the scale
// workload and attaches the endpoints over one transport: connections to
// a stream-listen port, or ports added through the control API.
func startZswitch(dir string, tr zsTransport) (*peer, error) {
	bin, err := buildZswitch(dir)
	if err != nil {
		return nil, err
	}
	d := filepath.Join(dir, "zs-"+string(tr))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	conf := filepath.Join(d, "zswitch.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "switch:\n  mac_table:\n    size: %d\n", zswitchMACTable), 0o644); err != nil {
		return nil, err
	}
	ctl := filepath.Join(d, "ctl")
	args := []string{"run", "--config", conf, "--control", ctl, "--log-level", "warn"}
	var listen string // stream: where endpoints connect
	switch tr {
	case zsUnix, zsUnixBP:
		listen = filepath.Join(d, "lab.sock")
	case zsTCP:
		if listen, err = freePort("tcp"); err != nil {
			return nil, err
		}
	}
	network := map[zsTransport]string{zsUnix: "unix", zsUnixBP: "unix", zsTCP: "tcp"}[tr]
	if listen != "" {
		spec := "stream-listen:" + network + ":" + listen + ",name=lab"
		if tr == zsUnixBP {
			spec += ",backpressure=on"
		}
		args = append(args, "--port", spec)
	} else {
		// zswitch wants a port to start with; nothing connects here.
		args = append(args, "--port", "stream-listen:unix:"+filepath.Join(d, "unused.sock")+",name=unused")
	}
	cmd := exec.Command(bin, args...)
	var nsName string
	var nsH netns.NsHandle
	cleanupNS := func() {}
	if tr == zsTAP {
		// zswitch creates its TAPs in a namespace of the harness: it runs there.
		if nsName, nsH, cleanupNS, err = newNS(); err != nil {
			return nil, err
		}
		cmd = exec.Command("ip", append([]string{"netns", "exec", nsName, bin}, args...)...)
	}
	stopProc, log, err := startProc(cmd)
	if err != nil {
		cleanupNS()
		return nil, err
	}
	stop := func() { stopProc(); cleanupNS() }
	api := control.NewClient(ctl)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := api.Ports(); err == nil {
			break
		} else if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("zswitch did not answer on %s: %v; its log:\n%s", ctl, err, log)
		}
	}
	p := &peer{Version: gitVersion(), stop: stop, cant: map[string]string{}}
	z := &zsAttach{tr: tr, dir: d, api: api, listen: listen, network: network, ns: nsH}
	p.attach, p.attachIdle = z.endpoint, z.idlePort
	switch tr {
	case zsUnix:
		p.Note = "QEMU stream clients on a unix socket (stream-listen), one port per connection"
	case zsTCP:
		p.Note = "QEMU stream over TCP on 127.0.0.1 (Nagle off)"
	case zsUnixBP:
		p.Note = "as zswitch (unix stream), with backpressure=on: a sender waits up to 100 ms per batch for room at a slow receiver instead of being dropped"
	case zsDgramUnix:
		p.Note = "one dgram:unix port per endpoint (QEMU -netdev dgram with unix sockets); the generator sends with sendmmsg on a connected socket and receives with recvmmsg; net.unix.max_dgram_qlen is the host's (10 here): a sender waits when 10 datagrams queue at the receiver"
	case zsDgramUDP:
		p.Note = "one dgram:udp port per endpoint on 127.0.0.1 (QEMU -netdev dgram, inet); sendmmsg/recvmmsg, 4 MiB socket buffers; UDP drops when a receive buffer is full"
	case zsTAP:
		p.Note = "one tap: port per endpoint, zswitch in a namespace of the harness; the generator is the host side of each TAP (AF_PACKET socket bound to it, sendmmsg/recvmmsg); zswitch reads and writes one frame per system call on a TAP"
	}
	p.Note = strings.TrimPrefix(p.Note+"; ", "; ") + fmt.Sprintf("MAC table size %d (mac_table.size) for the 100k-MAC workload", zswitchMACTable)
	p.fdbSize = func(int) (int, bool, error) {
		ps, err := api.Ports()
		if err != nil {
			return 0, false, err
		}
		n := 0
		for _, pi := range ps {
			n += pi.MACs
		}
		return n, true, nil
	}
	p.diag = func() string {
		out, _ := exec.Command(bin, "ctl", "--control", ctl, "ports").CombinedOutput()
		return string(out)
	}
	return p, nil
}

// zsAttach attaches endpoints and idle ports to one zswitch.
type zsAttach struct {
	tr      zsTransport
	dir     string
	api     *control.Client
	listen  string // stream transports
	network string
	ns      netns.NsHandle // TAP: zswitch's namespace
}

func (z *zsAttach) endpoint(i int) (*endpoint, error) {
	mac, name := macOf(i), epName(i)
	switch z.tr {
	case zsUnix, zsUnixBP, zsTCP:
		c, err := dialRetry(z.network, z.listen, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("dial zswitch: %w", err)
		}
		return fileEndpoint(name, mac, c, 4), nil
	case zsDgramUnix, zsDgramUDP:
		rx, tx, detach, err := z.dgramPort("e", i, true)
		if err != nil {
			return nil, err
		}
		ep, err := dgramEndpoint(name, mac, rx, tx)
		if err != nil {
			detach.Close()
			return nil, err
		}
		ep.closers = append(ep.closers, detach)
		return ep, nil
	case zsTAP:
		ifname, port := fmt.Sprintf("zte%d", i), fmt.Sprintf("e%d", i)
		if _, err := z.api.AddPort(fmt.Sprintf("tap:%s,name=%s", ifname, port)); err != nil {
			return nil, fmt.Errorf("add %s: %w", ifname, err)
		}
		detach := closerFunc(func() error { _, err := z.api.RemovePort(port); return err })
		fd, err := packetSocket(z.ns, ifname)
		if err != nil {
			detach.Close()
			return nil, err
		}
		ep, err := dgramEndpoint(name, mac, fd, fd)
		if err != nil {
			unix.Close(fd)
			detach.Close()
			return nil, err
		}
		// The socket goes before the TAP it is bound to.
		ep.closers = append(ep.closers, detach)
		return ep, nil
	}
	return nil, fmt.Errorf("transport %s", z.tr)
}

func (z *zsAttach) idlePort(i int) (io.Closer, error) {
	switch z.tr {
	case zsUnix, zsUnixBP, zsTCP:
		return dialRetry(z.network, z.listen, 5*time.Second)
	case zsDgramUnix, zsDgramUDP:
		rx, tx, detach, err := z.dgramPort("i", i, false)
		if err != nil {
			return nil, err
		}
		return closerFunc(func() error {
			err := detach.Close()
			unix.Close(rx)
			if tx != rx {
				unix.Close(tx)
			}
			return err
		}), nil
	case zsTAP:
		port := fmt.Sprintf("i%d", i)
		if _, err := z.api.AddPort(fmt.Sprintf("tap:zti%d,name=%s", i, port)); err != nil {
			return nil, err
		}
		return closerFunc(func() error { _, err := z.api.RemovePort(port); return err }), nil
	}
	return nil, fmt.Errorf("transport %s", z.tr)
}

// dgramPort binds the guest's socket, adds the zswitch dgram port that
// sends to it, and connects a socket towards the port: rx receives, tx
// sends (one socket for UDP; two for unix, where a connected socket
// would refuse datagrams from zswitch's separate sending socket).
func (z *zsAttach) dgramPort(prefix string, i int, big bool) (rx, tx int, detach io.Closer, err error) {
	port := fmt.Sprintf("%s%d", prefix, i)
	var spec string
	var to unix.Sockaddr
	if z.tr == zsDgramUnix {
		gpath, zpath := filepath.Join(z.dir, "g"+port+".sock"), filepath.Join(z.dir, "z"+port+".sock")
		os.Remove(gpath)
		if rx, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return -1, -1, nil, err
		}
		if err = unix.Bind(rx, &unix.SockaddrUnix{Name: gpath}); err != nil {
			unix.Close(rx)
			return -1, -1, nil, fmt.Errorf("bind %s: %w", gpath, err)
		}
		if tx, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			unix.Close(rx)
			return -1, -1, nil, err
		}
		spec, to = fmt.Sprintf("dgram:unix:%s,remote=%s,name=%s", zpath, gpath, port), &unix.SockaddrUnix{Name: zpath}
	} else {
		if rx, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return -1, -1, nil, err
		}
		tx = rx
		if err = unix.Bind(rx, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			unix.Close(rx)
			return -1, -1, nil, err
		}
		sa, gerr := unix.Getsockname(rx)
		if gerr != nil {
			unix.Close(rx)
			return -1, -1, nil, fmt.Errorf("getsockname: %w", gerr)
		}
		zaddr, ferr := freePort("udp")
		if ferr != nil {
			unix.Close(rx)
			return -1, -1, nil, ferr
		}
		zap, perr := netip.ParseAddrPort(zaddr)
		if perr != nil {
			unix.Close(rx)
			return -1, -1, nil, fmt.Errorf("free port %q: %w", zaddr, perr)
		}
		spec = fmt.Sprintf("dgram:udp:%s,remote=127.0.0.1:%d,name=%s", zaddr, sa.(*unix.SockaddrInet4).Port, port)
		to = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(zap.Port())}
	}
	if big {
		setBuffers(rx, 4<<20)
		setBuffers(tx, 4<<20)
	}
	closeFDs := func() {
		unix.Close(rx)
		if tx != rx {
			unix.Close(tx)
		}
	}
	if _, err := z.api.AddPort(spec); err != nil {
		closeFDs()
		return -1, -1, nil, fmt.Errorf("add %s: %w", spec, err)
	}
	detach = closerFunc(func() error { _, err := z.api.RemovePort(port); return err })
	if err := unix.Connect(tx, to); err != nil {
		detach.Close()
		closeFDs()
		return -1, -1, nil, fmt.Errorf("connect to zswitch port %s: %w", port, err)
	}
	return rx, tx, detach, nil
}

// freePort returns a loopback address with a port free a moment ago; the
// switch binds it right after.
func freePort(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func gitVersion() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "zswitch (unknown commit)"
	}
	return "zswitch " + strings.TrimSpace(string(out))
}
