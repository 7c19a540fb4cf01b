package sockets

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func listen(t *testing.T, network, addr string) *Listener {
	t.Helper()
	l, err := Listen("test", network, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// staleSocket leaves a unix socket file at path that nobody listens on, as
// a process killed before it could remove it does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket at %s: %v", path, err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zsw.sock")
	staleSocket(t, path)
	l, err := Listen("test", "unix", path, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if l.Addr() != path {
		t.Fatalf("Addr %q, want %q", l.Addr(), path)
	}
	if want := "test unix:" + path; l.String() != want {
		t.Fatalf("String %q, want %q", l.String(), want)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
	conn, n, err := l.Accept()
	if err != nil || n != 1 {
		t.Fatalf("Accept = %d, %v; want 1, nil", n, err)
	}
	conn.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left the socket file: %v", err)
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zsw.sock")
	l := listen(t, "unix", path)
	_, err := Listen("test", "unix", path, nil)
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Listen on a live socket: %v, want address in use", err)
	}
	if !strings.HasPrefix(err.Error(), "test unix:"+path+": ") {
		t.Fatalf("error %q does not start with the listener's name", err)
	}
	// Left alone: the first listener still takes connections.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("live socket damaged: %v", err)
	}
	c.Close()
	if conn, _, err := l.Accept(); err != nil {
		t.Fatal(err)
	} else {
		conn.Close()
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if l, err := Listen("test", "unix", file, nil); err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	} else if errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("regular file: %v, want no EADDRINUSE", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file damaged")
	}

	sub := filepath.Join(dir, "dir")
	os.Mkdir(sub, 0o700)
	if l, err := Listen("test", "unix", sub, nil); err == nil {
		l.Close()
		t.Fatal("Listen replaced a directory")
	}
	if fi, err := os.Stat(sub); err != nil || !fi.IsDir() {
		t.Fatalf("directory damaged: %v", err)
	}

	// A datagram socket someone uses is not ours to remove.
	gram := filepath.Join(dir, "gram.sock")
	g, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: gram, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if l, err := Listen("test", "unix", gram, nil); err == nil {
		l.Close()
		t.Fatal("Listen replaced a datagram socket")
	}
	if fi, err := os.Lstat(gram); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("datagram socket damaged: %v", err)
	}
}

func TestCloseRemovesOnlyItsOwnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zsw.sock")
	l := listen(t, "unix", path)
	os.Remove(path)
	os.WriteFile(path, []byte("new"), 0o600)
	l.Close()
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatal("Close removed a file it did not create")
	}

	// Nor a socket another listener bound there since.
	os.Remove(path)
	l = listen(t, "unix", path)
	os.Remove(path)
	l2 := listen(t, "unix", path)
	l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close removed the next listener's socket: %v", err)
	}
	l2.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Close left its socket file: %v", err)
	}
}

func TestCloseTwiceAndAcceptAfterClose(t *testing.T) {
	l := listen(t, "unix", filepath.Join(t.TempDir(), "zsw.sock"))
	errc := make(chan error, 1)
	go func() { _, _, err := l.Accept(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept: %v, want net.ErrClosed", err)
		}
		if !strings.HasPrefix(err.Error(), l.String()+": accept: ") {
			t.Fatalf("Accept error %q lacks the listener's name", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestListenAbstract(t *testing.T) {
	addr := fmt.Sprintf("@zswitch-sockets-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	l := listen(t, "unix", addr)
	if l.Addr() != addr {
		t.Fatalf("Addr %q, want %q", l.Addr(), addr)
	}
	c, err := net.Dial("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn, n, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// An unnamed unix peer has no address worth a name.
	if got, want := l.ConnName(n, conn.RemoteAddr()), "test unix:"+addr+"#1"; got != want {
		t.Fatalf("ConnName %q, want %q", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Listen("test", "unix", addr, nil)
	if err != nil {
		t.Fatalf("abstract address not free after Close: %v", err)
	}
	l2.Close()
}

func TestListenTCP(t *testing.T) {
	l := listen(t, "tcp", "127.0.0.1:0")
	ap, err := net.ResolveTCPAddr("tcp", l.Addr())
	if err != nil || ap.Port == 0 {
		t.Fatalf("Addr %q: %v", l.Addr(), err)
	}
	if want := "test tcp:" + l.Addr(); l.String() != want {
		t.Fatalf("String %q, want %q: the name has the port bound", l.String(), want)
	}
	for i := range 2 {
		c, err := net.Dial("tcp", l.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conn, n, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if n != uint64(i+1) {
			t.Fatalf("connection %d numbered %d", i+1, n)
		}
		if got, want := l.ConnName(n, conn.RemoteAddr()), fmt.Sprintf("%s#%d(%s)", l, n, c.LocalAddr()); got != want {
			t.Fatalf("ConnName %q, want %q", got, want)
		}
		if got, want := l.ConnName(n, nil), fmt.Sprintf("%s#%d", l, n); got != want {
			t.Fatalf("ConnName without peer %q, want %q", got, want)
		}
		conn.Close()
		c.Close()
	}
}

func TestListenArgs(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		want          error
		msg           string
	}{
		{"udp", "127.0.0.1:0", ErrNetwork, "test udp:127.0.0.1:0: network must be unix or tcp"},
		{"", "x", ErrNetwork, "test :x: network must be unix or tcp"},
		{"unix", "", ErrNoPath, "test unix:: no path"},
	} {
		l, err := Listen("test", tc.network, tc.addr, nil)
		if err == nil {
			l.Close()
			t.Errorf("Listen(%q, %q): no error", tc.network, tc.addr)
			continue
		}
		if !errors.Is(err, tc.want) || err.Error() != tc.msg {
			t.Errorf("Listen(%q, %q): %q, want %q", tc.network, tc.addr, err, tc.msg)
		}
	}
	if _, err := Listen("test", "tcp", "127.0.0.1:-1", nil); err == nil || !strings.HasPrefix(err.Error(), "test tcp:127.0.0.1:-1: ") {
		t.Errorf("Listen on a bad tcp address: %v", err)
	}
}

func TestRemoveStaleSocket(t *testing.T) {
	dir := t.TempDir()
	if err := RemoveStaleSocket(filepath.Join(dir, "none")); err != nil {
		t.Fatalf("no file: %v", err)
	}
	path := filepath.Join(dir, "stale.sock")
	staleSocket(t, path)
	if err := RemoveStaleSocket(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket kept: %v", err)
	}
}
