package zbench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// vdePorts is vde_switch's port count (-n; default 32): every endpoint,
// idle port and the MAC-table filler at once.
const vdePorts = 320

// startVDE runs vde_switch (Debian vde2) with its console on a pipe kept
// open (it exits on console EOF) and a management socket. Endpoints are
// vde_plug processes whose stdio carries the frames (plug true: 2-byte
// big-endian length, vdeplug's stream encoding; an extra process hop each
// way), or speak vde's own protocol like QEMU's -netdev vde (plug false).
// Idle ports always use vde's own protocol: no process per port.
func startVDE(dir string, plug bool) (*peer, error) {
	if _, err := exec.LookPath("vde_switch"); err != nil {
		return nil, fmt.Errorf("vde_switch not installed (.ci/deps.sh, or apt-get install -y vde2)")
	}
	tag := "native"
	if plug {
		tag = "plug"
	}
	d := filepath.Join(dir, "vde-"+tag)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	sw, mgmt := filepath.Join(d, "sw"), filepath.Join(d, "mgmt")
	consR, consW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("vde_switch", "-s", sw, "-M", mgmt, "-n", fmt.Sprint(vdePorts))
	cmd.Stdin = consR
	swStop, log, err := startProc(cmd)
	consR.Close()
	if err != nil {
		consW.Close()
		return nil, err
	}
	stop := func() { swStop(); consW.Close() }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err1 := os.Stat(filepath.Join(sw, "ctl"))
		_, err2 := os.Stat(mgmt)
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("vde_switch did not create %s; log:\n%s", sw, log)
		}
	}
	p := &peer{Version: vdeVersion(), stop: stop, cant: map[string]string{}}
	if plug {
		p.Note = "endpoints are vde_plug processes on stdio pipes: an extra process hop each way, as for UML/vde_plug users"
		p.attach = func(i int) (*endpoint, error) { return vdePlugEndpoint(sw, i) }
	} else {
		p.Note = "endpoints speak vde's own protocol as QEMU's -netdev vde does (control socket handshake, then one unix datagram per frame; sendmmsg/recvmmsg here); vde_switch sends without waiting and drops when 10 datagrams (net.unix.max_dgram_qlen) queue at a receiver"
		p.attach = func(i int) (*endpoint, error) {
			fd, ctl, err := vdeNativePort(sw, filepath.Join(d, fmt.Sprintf("e%d", i)), 4<<20)
			if err != nil {
				return nil, err
			}
			ep, err := dgramEndpoint(epName(i), macOf(i), fd, fd)
			if err != nil {
				unix.Close(fd)
				ctl.Close()
				return nil, err
			}
			ep.closers = append(ep.closers, ctl)
			return ep, nil
		}
	}
	p.Note += fmt.Sprintf("; default hash table (vde_switch -n %d, no --hashsize)", vdePorts)
	p.attachIdle = func(i int) (io.Closer, error) {
		fd, ctl, err := vdeNativePort(sw, filepath.Join(d, fmt.Sprintf("i%d", i)), 0)
		if err != nil {
			return nil, err
		}
		return closerFunc(func() error { unix.Close(fd); return ctl.Close() }), nil
	}
	p.fdbSize = func(learned int) (int, bool, error) {
		n, err := vdeLearned(mgmt, learned)
		return n, false, err
	}
	return p, nil
}

// vdePlugEndpoint starts `vde_plug vde://SW` with pipes on its stdio:
// endpoint → pipe → vde_plug → vde_switch and back.
func vdePlugEndpoint(sw string, i int) (*endpoint, error) {
	inR, inW, err := os.Pipe() // endpoint writes inW → vde_plug stdin
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe() // vde_plug stdout → endpoint reads outR
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command("vde_plug", "vde://"+sw)
	cmd.Stdin, cmd.Stdout = inR, outW
	st, _, err := startProc(cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	// vde_plug joins the switch on its own: give it a moment.
	time.Sleep(20 * time.Millisecond)
	return newEndpoint(epName(i), macOf(i), outR, inW, 2, outR.SetReadDeadline,
		inW, outR, closerFunc(func() error { st(); return nil })), nil
}

// vde's control protocol (vde-2 src/vde_switch/datasock.c, version 3):
// the client binds a unix datagram socket, connects to SW/ctl and sends
// {magic, version 3, REQ_NEW_CONTROL, its socket's sockaddr_un,
// description}; the switch answers with the sockaddr_un of the datagram
// socket it created for the port. Frames are datagrams between the two;
// the port lives as long as the control connection.
const (
	vdeMagic        = 0xfeedface
	sizeofSockaddrU = 110 // struct sockaddr_un on Linux
)

func vdeNativePort(sw, path string, buf int) (int, net.Conn, error) {
	os.Remove(path)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	fail := func(err error) (int, net.Conn, error) {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("vde port %s: %w", path, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fail(err)
	}
	if buf > 0 {
		setBuffers(fd, buf)
	}
	ctl, err := net.Dial("unix", filepath.Join(sw, "ctl"))
	if err != nil {
		return fail(err)
	}
	req := make([]byte, 12+sizeofSockaddrU, 12+sizeofSockaddrU+8)
	binary.NativeEndian.PutUint32(req[0:], vdeMagic)
	binary.NativeEndian.PutUint32(req[4:], 3)
	binary.NativeEndian.PutUint32(req[8:], 0) // REQ_NEW_CONTROL, any port number
	binary.NativeEndian.PutUint16(req[12:], unix.AF_UNIX)
	copy(req[14:12+sizeofSockaddrU], path)
	req = append(req, "zbench\x00"...)
	ctl.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := ctl.Write(req); err != nil {
		ctl.Close()
		return fail(err)
	}
	var rep [sizeofSockaddrU]byte
	if _, err := io.ReadFull(ctl, rep[:]); err != nil {
		ctl.Close()
		return fail(fmt.Errorf("no answer from vde_switch: %w", err))
	}
	ctl.SetDeadline(time.Time{})
	data := string(rep[2:])
	if i := strings.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: data}); err != nil {
		ctl.Close()
		return fail(fmt.Errorf("connect to %s: %w", data, err))
	}
	return fd, ctl, nil
}

// vdeLearned estimates how many of the learned learnMACs the table holds
// by looking a sample up through the management socket: hash/print would
// be exact, but vde_switch writes its output without waiting and cuts it
// off beyond a socket buffer (some 3000 entries).
func vdeLearned(mgmt string, learned int) (int, error) {
	c, err := net.Dial("unix", mgmt)
	if err != nil {
		return 0, fmt.Errorf("vde mgmt: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sc := bufio.NewScanner(c)
	const samples = 200
	found := 0
	for k := range samples {
		m := learnMAC(uint64(k * learned / samples))
		if _, err := fmt.Fprintf(c, "hash/find %02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4], m[5]); err != nil {
			return 0, fmt.Errorf("vde mgmt: %w", err)
		}
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, "Addr:") {
				found++
			}
			if vdeStatus(l) {
				break
			}
		}
		if err := sc.Err(); err != nil {
			return 0, fmt.Errorf("vde mgmt: %w", err)
		}
	}
	return learned * found / samples, nil
}

// vdeStatus reports whether l ends an answer: "1000 Success", or an
// error such as "1019 No such device" (not in the table), maybe after the
// prompt.
func vdeStatus(l string) bool {
	l = strings.TrimPrefix(l, "vde$ ")
	return len(l) > 5 && l[4] == ' ' && l[0] != '0' && strings.Trim(l[:4], "0123456789") == ""
}

func vdeVersion() string {
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Version}", "vde2").Output()
	if len(out) == 0 {
		return "vde2"
	}
	return "vde2 " + string(out)
}
