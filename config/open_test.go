package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenEveryKind opens each kind for real on loopback and checks the
// QEMU flags it prints point at what was opened.
func TestOpenEveryKind(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		spec string
		want []string // substrings of the QEMU flags
	}{
		{"stream-listen:unix:" + dir + "/l.sock", []string{"server=off,addr.type=unix,addr.path=" + dir + "/l.sock"}},
		{"stream-listen:tcp:127.0.0.1:0", []string{"server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=", "-netdev socket,id=net0,connect=127.0.0.1:"}},
		{"stream-connect:unix:" + dir + "/c.sock", []string{"server=on,addr.type=unix,addr.path=" + dir + "/c.sock"}},
		{"stream-connect:tcp:127.0.0.1:5556", []string{"server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=5556", "socket,id=net0,listen=127.0.0.1:5556"}},
		{"dgram:udp:127.0.0.1:0,remote=127.0.0.1:5001", []string{"local.type=inet,local.host=127.0.0.1,local.port=5001,remote.type=inet,remote.host=127.0.0.1,remote.port=", "udp=127.0.0.1:"}},
		{"dgram:unix:" + dir + "/d.sock,remote=" + dir + "/q.sock", []string{"local.type=unix,local.path=" + dir + "/q.sock,remote.type=unix,remote.path=" + dir + "/d.sock"}},
		// QEMU 7.2 wants a local.port for a multicast dgram; 0 is right there.
		{"mcast:230.0.0.9:4321", []string{"-netdev socket,id=net0,mcast=230.0.0.9:4321,localaddr=127.0.0.1", "local.host=127.0.0.1,local.port=0"}},
	} {
		sp, err := ParseSpec(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		o, err := Open(sp, Env{})
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		flags := strings.Join(QEMUFlags(sp, o), "\n")
		for _, w := range tc.want {
			if !strings.Contains(flags, w) {
				t.Errorf("%s: QEMU flags %q lack %q", tc.spec, flags, w)
			}
		}
		if strings.Contains(flags, ":0,") || strings.HasSuffix(flags, ":0") || strings.Contains(strings.ReplaceAll(flags, "local.port=0", ""), "port=0") {
			t.Errorf("%s: QEMU flags %q show port 0, not the bound port", tc.spec, flags)
		}
		if err := o.Close(); err != nil {
			t.Errorf("%s: close: %v", tc.spec, err)
		}
	}
	// Every socket file zswitch bound is gone after Close.
	left, _ := filepath.Glob(dir + "/*")
	if len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestOpenErrorsNameThePort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sp, _ := ParseSpec("stream-listen:tcp:" + l.Addr().String() + ",name=busy")
	if _, err := Open(sp, Env{}); err == nil || !strings.Contains(err.Error(), "port busy") {
		t.Fatalf("error %v does not name the port", err)
	}
	f := filepath.Join(t.TempDir(), "regular")
	os.WriteFile(f, nil, 0o644)
	sp, _ = ParseSpec("stream-listen:unix:" + f)
	if _, err := Open(sp, Env{}); err == nil {
		t.Fatal("listening over a regular file succeeded")
	}
}
