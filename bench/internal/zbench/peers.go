package zbench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// peer is something that connects two endpoints: a switch the harness
// starts, or nothing at all (the baseline).
type peer struct {
	Name    string
	Version string
	Note    string
	a, b    *endpoint
	stop    func()
	// diag, if set, returns the peer's own counters (logged with -v).
	diag func() string
}

type peerFactory struct {
	name  string
	quick bool // part of -quick
	start func(dir string) (*peer, error)
}

var factories = []peerFactory{
	{"no switch (socketpair)", true, startBaseline},
	{"zswitch", true, func(dir string) (*peer, error) { return startZswitch(dir, "unix") }},
	{"zswitch (TCP)", false, func(dir string) (*peer, error) { return startZswitch(dir, "tcp") }},
	{"Linux bridge + TAPs", false, startBridge},
	{"gvproxy (gvisor-tap-vsock)", false, startGvproxy},
	{"QEMU multicast hub", false, startMcastHub},
	{"vde_switch + vde_plug", false, startVDE},
}

// startBaseline joins A and B directly with a unix stream socketpair,
// QEMU framing: the generator's own ceiling.
func startBaseline(string) (*peer, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	a := fileEndpoint("A", macA, os.NewFile(uintptr(fds[0]), "sp-a"), 4)
	b := fileEndpoint("B", macB, os.NewFile(uintptr(fds[1]), "sp-b"), 4)
	return &peer{a: a, b: b, Version: "unix socketpair", stop: func() { a.close(); b.close() }}, nil
}

// zswitchBin is built once per process (or given with Options.ZswitchBin).
var zswitchBin string

func buildZswitch(dir string) (string, error) {
	if zswitchBin != "" {
		return zswitchBin, nil
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

// startProc starts a peer process in its own process group so stopping it
// (by its pid) takes its children too.
func startProc(cmd *exec.Cmd) (stop func(), log *bytes.Buffer, err error) {
	log = new(bytes.Buffer)
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	return func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
	}, log, nil
}

func dialRetry(network, addr string, d time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial(network, addr)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startZswitch runs the zswitch binary with one stream-listen port (unix
// socket, or TCP on 127.0.0.1); A and B connect to it as two QEMU stream
// clients.
func startZswitch(dir, network string) (*peer, error) {
	bin, err := buildZswitch(dir)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "zswitch.sock")
	if network == "tcp" {
		// A free loopback port: taken by zswitch a moment after we let go.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		sock = l.Addr().String()
		l.Close()
	}
	ctl := filepath.Join(dir, "zswitch-"+network+".ctl")
	cmd := exec.Command(bin, "run", "--control", ctl, "--log-level", "warn",
		"--port", "stream-listen:"+network+":"+sock+",name=lab")
	stop, log, err := startProc(cmd)
	if err != nil {
		return nil, err
	}
	p := &peer{stop: stop}
	var eps []*endpoint
	for i, mac := range [][6]byte{macA, macB} {
		c, err := dialRetry(network, sock, 5*time.Second)
		if err != nil {
			stop()
			return nil, fmt.Errorf("dial zswitch: %v; its log:\n%s", err, log)
		}
		eps = append(eps, fileEndpoint(string(rune('A'+i)), mac, c, 4))
	}
	p.a, p.b = eps[0], eps[1]
	p.stop = func() { p.a.close(); p.b.close(); stop() }
	p.Version = gitVersion()
	if network == "tcp" {
		p.Note = "QEMU stream over TCP on 127.0.0.1 (Nagle off)"
	}
	p.diag = func() string {
		out, _ := exec.Command(bin, "ctl", "--control", ctl, "ports").CombinedOutput()
		out2, _ := exec.Command(bin, "ctl", "--control", ctl, "port", "lab/2").CombinedOutput()
		return string(out) + string(out2)
	}
	return p, nil
}

func gitVersion() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "zswitch (unknown commit)"
	}
	return "zswitch " + strings.TrimSpace(string(out))
}

// startVDE runs vde_switch (Debian vde2) and two vde_plug processes whose
// stdio carries the frames (2-byte big-endian length prefix, vdeplug's
// stream encoding): endpoint → pipe → vde_plug → vde_switch.
func startVDE(dir string) (*peer, error) {
	if _, err := exec.LookPath("vde_switch"); err != nil {
		return nil, fmt.Errorf("vde_switch not installed (apt-get install -y vde2)")
	}
	sw := filepath.Join(dir, "vde")
	// vde_switch exits on EOF of its console (stdin): keep a pipe open.
	consR, consW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("vde_switch", "-s", sw)
	cmd.Stdin = consR
	swStop, log, err := startProc(cmd)
	consR.Close()
	if err != nil {
		consW.Close()
		return nil, err
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		swStop()
		consW.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(sw, "ctl")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			stopAll()
			return nil, fmt.Errorf("vde_switch did not create %s; log:\n%s", sw, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var eps []*endpoint
	for i, mac := range [][6]byte{macA, macB} {
		inR, inW, err := os.Pipe() // endpoint writes inW → vde_plug stdin
		if err != nil {
			stopAll()
			return nil, err
		}
		outR, outW, err := os.Pipe() // vde_plug stdout → endpoint reads outR
		if err != nil {
			stopAll()
			return nil, err
		}
		plug := exec.Command("vde_plug", "vde://"+sw)
		plug.Stdin, plug.Stdout = inR, outW
		st, _, err := startProc(plug)
		inR.Close()
		outW.Close()
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, st)
		eps = append(eps, newEndpoint(string(rune('A'+i)), mac, outR, inW, 2, outR.SetReadDeadline, inW, outR))
	}
	p := &peer{a: eps[0], b: eps[1], Version: vdeVersion(),
		Note: "endpoints are vde_plug processes on stdio pipes: an extra process hop each way, as for UML/vde_plug users; QEMU's -netdev vde would skip it"}
	p.stop = func() { p.a.close(); p.b.close(); stopAll() }
	time.Sleep(100 * time.Millisecond) // plugs join the switch
	return p, nil
}

// startGvproxy runs gvisor-tap-vsock's gvproxy (go install
// github.com/containers/gvisor-tap-vsock/cmd/gvproxy@v0.8.9). It accepts a
// single QEMU on -listen-qemu (and exits when that connection closes);
// further VMs attach through its control endpoint: an HTTP request for
// /connect, after which the hijacked connection carries the same QEMU
// framing. A takes the first way, B the second.
func startGvproxy(dir string) (*peer, error) {
	bin, err := exec.LookPath("gvproxy")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "gvproxy")
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("gvproxy not installed (go install github.com/containers/gvisor-tap-vsock/cmd/gvproxy@v0.8.9)")
		}
	}
	qsock, csock := filepath.Join(dir, "gv-qemu.sock"), filepath.Join(dir, "gv-ctl.sock")
	stop, log, err := startProc(exec.Command(bin, "-listen-qemu", "unix://"+qsock, "-listen", "unix://"+csock, "-ssh-port", "-1"))
	if err != nil {
		return nil, err
	}
	ca, err := dialRetry("unix", qsock, 5*time.Second)
	if err != nil {
		stop()
		return nil, fmt.Errorf("dial gvproxy: %v; log:\n%s", err, log)
	}
	cb, err := dialRetry("unix", csock, 5*time.Second)
	if err == nil {
		_, err = io.WriteString(cb, "POST /connect HTTP/1.1\r\nHost: gvproxy\r\n\r\n")
	}
	if err != nil {
		ca.Close()
		stop()
		return nil, fmt.Errorf("gvproxy /connect: %v; log:\n%s", err, log)
	}
	// Nothing may follow the request until the server has hijacked the
	// connection, or its HTTP reader could swallow our first frame.
	time.Sleep(100 * time.Millisecond)
	a := fileEndpoint("A", macA, ca, 4)
	b := fileEndpoint("B", macB, cb, 4)
	ver, _ := exec.Command(bin, "-version").CombinedOutput()
	p := &peer{a: a, b: b, Version: strings.TrimSpace(string(ver)),
		Note: "forwards only to learned MACs and broadcast (unknown unicast is dropped); learning from the announce frames makes A↔B unicast work"}
	p.stop = func() { a.close(); b.close(); stop() }
	return p, nil
}

func vdeVersion() string {
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Version}", "vde2").Output()
	if len(out) == 0 {
		return "vde2"
	}
	return "vde2 " + string(out)
}

// nsPrefix names the harness's namespaces; stale ones (dead pid) are swept.
const nsPrefix = "zbench-"

func sweepStaleNS() {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		netns.DeleteNamed(e.Name())
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// openTAP creates a TAP (IFF_TAP|IFF_NO_PI) inside the namespace and
// returns its fd as a pollable file.
func openTAP(ns netns.NsHandle, name string) (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: if switching back fails, the thread dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			ch <- res{nil, err}
			return
		}
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			var ifr [unix.IFNAMSIZ + 64]byte
			copy(ifr[:], name)
			*(*uint16)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
			if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&ifr[0]))); e != 0 {
				unix.Close(fd)
				err = fmt.Errorf("TUNSETIFF %s: %w", name, e)
			}
		}
		if serr := netns.Set(orig); serr != nil {
			if err == nil {
				unix.Close(fd)
			}
			ch <- res{nil, serr}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		ch <- res{os.NewFile(uintptr(fd), "/dev/net/tun:"+name), nil}
	}()
	r := <-ch
	return r.f, r.err
}

// startBridge: a namespace of its own with br0 and two TAPs whose fds are
// the endpoints. Needs root; the namespace goes with stop.
func startBridge(string) (*peer, error) {
	name, h, cleanupNS, err := newNS()
	if err != nil {
		return nil, err
	}
	var files []*os.File
	fail := func(err error) (*peer, error) {
		for _, f := range files {
			f.Close()
		}
		cleanupNS()
		return nil, err
	}
	if out, err := exec.Command("ip", "netns", "exec", name, "sysctl", "-qw",
		"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("sysctl: %v: %s", err, out))
	}
	if err := ip("-n", name, "link", "add", "br0", "type", "bridge"); err != nil {
		return fail(err)
	}
	for _, t := range []string{"tapa", "tapb"} {
		f, err := openTAP(h, t)
		if err != nil {
			return fail(err)
		}
		files = append(files, f)
		if err := ip("-n", name, "link", "set", t, "master", "br0", "up"); err != nil {
			return fail(err)
		}
	}
	if err := ip("-n", name, "link", "set", "br0", "up"); err != nil {
		return fail(err)
	}
	a := fileEndpoint("A", macA, files[0], 0)
	b := fileEndpoint("B", macB, files[1], 0)
	kv, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	p := &peer{a: a, b: b, Version: "Linux " + strings.TrimSpace(string(kv)),
		Note: "TAP fds take one frame per read/write (no batching on TAP); the kernel drops on overload, so loss is not 0"}
	p.stop = func() { a.close(); b.close(); cleanupNS() }
	return p, nil
}

// inNS runs fn on a thread switched into ns and back. Sockets and TAPs
// created by fn stay in ns after the switch back.
func inNS(ns netns.NsHandle, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked if switching back fails: the thread dies with the goroutine
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			ch <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			ch <- err
			return
		}
		runtime.UnlockOSThread()
		ch <- ferr
	}()
	return <-ch
}

// newNS creates the harness's namespace zbench-<pid>-<rand> (after
// sweeping stale ones); cleanup closes the handle and deletes it.
func newNS() (name string, h netns.NsHandle, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return "", 0, nil, fmt.Errorf("needs root")
	}
	sweepStaleNS()
	var rb [4]byte
	rand.Read(rb[:])
	name = fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(rb[:]))
	if err := ip("netns", "add", name); err != nil {
		return "", 0, nil, err
	}
	if h, err = netns.GetFromName(name); err != nil {
		ip("netns", "delete", name)
		return "", 0, nil, err
	}
	return name, h, func() { h.Close(); ip("netns", "delete", name) }, nil
}

// mcastEndpoint is what QEMU's -netdev socket,mcast=230.0.0.1:1234,
// localaddr=127.0.0.1 does: a socket bound to the group's port that joined
// it on lo (multicast loop on, so every member, the sender too, gets every
// frame), one datagram per frame. Here receiving and sending use two
// sockets, the sender connected to the group, so the endpoint can be a
// plain reader and writer.
func mcastEndpoint(name string, mac [6]byte, group [4]byte, port int) (*endpoint, error) {
	lo := [4]byte{127, 0, 0, 1}
	rfd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		unix.Close(rfd)
		return nil, err
	}
	fail := func(what string, err error) (*endpoint, error) {
		unix.Close(rfd)
		unix.Close(wfd)
		return nil, fmt.Errorf("mcast %s: %w", what, err)
	}
	if err := unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(rfd, &unix.SockaddrInet4{Port: port, Addr: group}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptIPMreq(rfd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreq{Multiaddr: group, Interface: lo}); err != nil {
		return fail("IP_ADD_MEMBERSHIP", err)
	}
	if err := unix.SetsockoptInet4Addr(wfd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, lo); err != nil {
		return fail("IP_MULTICAST_IF", err)
	}
	unix.SetsockoptInt(wfd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1)
	if err := unix.Connect(wfd, &unix.SockaddrInet4{Port: port, Addr: group}); err != nil {
		return fail("connect", err)
	}
	r := os.NewFile(uintptr(rfd), name+"-mcast-rx")
	w := os.NewFile(uintptr(wfd), name+"-mcast-tx")
	return newEndpoint(name, mac, r, w, 0, r.SetReadDeadline, r, w), nil
}

// startMcastHub: QEMU's multicast "hub" — no process at all, the kernel
// delivers every datagram to every member. Inside the harness's namespace
// (lo up, multicast on), never in the root one.
func startMcastHub(string) (*peer, error) {
	name, h, cleanup, err := newNS()
	if err != nil {
		return nil, err
	}
	if err := ip("-n", name, "link", "set", "lo", "up", "multicast", "on"); err != nil {
		cleanup()
		return nil, err
	}
	var a, b *endpoint
	err = inNS(h, func() (err error) {
		if a, err = mcastEndpoint("A", macA, [4]byte{230, 0, 0, 1}, 1234); err != nil {
			return err
		}
		b, err = mcastEndpoint("B", macB, [4]byte{230, 0, 0, 1}, 1234)
		return err
	})
	if err != nil {
		if a != nil {
			a.close()
		}
		cleanup()
		return nil, err
	}
	p := &peer{a: a, b: b, Version: "kernel UDP multicast on lo (what QEMU -netdev socket,mcast= uses)",
		Note: "a hub: every frame goes to every member, the sender included; one datagram per frame, the kernel drops when a receive buffer (4 MiB here) is full"}
	p.stop = func() { a.close(); b.close(); cleanup() }
	return p, nil
}
