package config

import (
	"strings"
	"testing"
)

func TestParseSpecGood(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		kind, tr, addr, name string
		opts                 map[string]string
	}{
		{"stream-listen:unix:/tmp/zswitch.sock", "stream-listen", "unix", "/tmp/zswitch.sock", "stream-listen:/tmp/zswitch.sock", nil},
		{"stream-listen:tcp:127.0.0.1:5555", "stream-listen", "tcp", "127.0.0.1:5555", "stream-listen:127.0.0.1:5555", nil},
		{"stream-listen:tcp:[::1]:0,name=v6", "stream-listen", "tcp", "[::1]:0", "v6", nil},
		{"stream-connect:unix:/tmp/q.sock,write-timeout=250ms", "stream-connect", "unix", "/tmp/q.sock", "stream-connect:/tmp/q.sock", map[string]string{"write-timeout": "250ms"}},
		{"stream-connect:tcp:localhost:5556,backoff-max=5s,name=vm1", "stream-connect", "tcp", "localhost:5556", "vm1", map[string]string{"backoff-max": "5s"}},
		{"dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001", "dgram", "udp", "127.0.0.1:5000", "dgram:127.0.0.1:5000", map[string]string{"remote": "127.0.0.1:5001"}},
		{"dgram:unix:/tmp/zsw.sock,remote=/tmp/q1.sock", "dgram", "unix", "/tmp/zsw.sock", "dgram:/tmp/zsw.sock", map[string]string{"remote": "/tmp/q1.sock"}},
		{"mcast:230.0.0.1:1234", "mcast", "", "230.0.0.1:1234", "mcast:230.0.0.1:1234", nil},
		{"mcast:230.0.0.1:1234,localaddr=127.0.0.1", "mcast", "", "230.0.0.1:1234", "mcast:230.0.0.1:1234", map[string]string{"localaddr": "127.0.0.1"}},
		{"tap:zeth0", "tap", "", "zeth0", "tap:zeth0", nil},
		{"tap:zeth0,persist=true,mtu=9000,user=0,group=0,name=host", "tap", "", "zeth0", "host", map[string]string{"persist": "true", "mtu": "9000", "user": "0", "group": "0"}},
		{"packet:zeth", "packet", "", "zeth", "packet:zeth", nil},
		{"slip-listen:unix:/tmp/slip.sock", "slip-listen", "unix", "/tmp/slip.sock", "slip-listen:/tmp/slip.sock", nil},
		{"slip-connect:tcp:127.0.0.1:4444,mode=eth", "slip-connect", "tcp", "127.0.0.1:4444", "slip-connect:127.0.0.1:4444", map[string]string{"mode": "eth"}},
		{"slip-listen:unix:/tmp/s,mode=ip", "slip-listen", "unix", "/tmp/s", "slip-listen:/tmp/s", map[string]string{"mode": "ip"}},
		{"slip-pty:/tmp/slip.dev", "slip-pty", "", "/tmp/slip.dev", "slip-pty:/tmp/slip.dev", nil},
		{"slip-tty:/dev/ttyUSB0,baud=921600", "slip-tty", "", "/dev/ttyUSB0", "slip-tty:/dev/ttyUSB0", map[string]string{"baud": "921600"}},
	} {
		sp, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if sp.Kind != tc.kind || sp.Transport != tc.tr || sp.Address != tc.addr || sp.Name != tc.name {
			t.Errorf("%s: got kind %q transport %q address %q name %q", tc.in, sp.Kind, sp.Transport, sp.Address, sp.Name)
		}
		if len(sp.Options) != len(tc.opts) {
			t.Errorf("%s: options %v, want %v", tc.in, sp.Options, tc.opts)
		}
		for k, v := range tc.opts {
			if sp.Options[k] != v {
				t.Errorf("%s: option %s = %q, want %q", tc.in, k, sp.Options[k], v)
			}
		}
	}
}

// TestParseSpecBad checks that each mistake is refused with a message that
// names what is wrong.
func TestParseSpecBad(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "want KIND:[TRANSPORT:]ADDRESS"},
		{"/tmp/zswitch.sock", "want KIND:[TRANSPORT:]ADDRESS"},
		{"stream:unix:/tmp/x", `unknown kind "stream"`},
		{"stream-listen:/tmp/x", "transport: want one of unix, tcp"},
		{"stream-listen:udp:1.2.3.4:5", "transport: want one of unix, tcp"},
		{"stream-listen:unix:", "address: missing"},
		{"stream-listen:tcp:127.0.0.1", "address: \"127.0.0.1\" is not HOST:PORT"},
		{"stream-connect:tcp:127.0.0.1:0", "port \"0\" is not a number from 1 to 65535"},
		{"stream-connect:tcp:127.0.0.1:99999", "is not a number from 1 to 65535"},
		{"stream-listen:unix:/tmp/" + strings.Repeat("x", 120), "the limit is 107"},
		{"stream-listen:unix:/tmp/x,bogus=1", `option "bogus": unknown for stream-listen; it takes: name, write-timeout`},
		{"stream-listen:unix:/tmp/x,write-timeout", `option "write-timeout": want key=value`},
		{"stream-listen:tcp:127.0.0.1:1,write-timeout=soon", "option write-timeout: \"soon\" is not a positive duration"},
		{"stream-listen:unix:/tmp/x,name=a,name=b", `option "name": given twice`},
		{"stream-listen:unix:/tmp/x,name=a b", "must not contain spaces"},
		{"stream-listen:unix:/tmp/x,name=", `option "name": empty value`},
		{"dgram:udp:127.0.0.1:5000", "option remote: missing"},
		{"dgram:udp:127.0.0.1:5000,remote=230.0.0.1:5001", "is a multicast group; use mcast:"},
		{"dgram:udp:127.0.0.1:5000,remote=[::1]:5001", "different IP families"},
		{"dgram:udp:nonsense,remote=127.0.0.1:1", "address: \"nonsense\" is not HOST:PORT"},
		{"dgram:udp:127.0.0.1:5000,remote=127.0.0.1:0", "option remote: port \"0\""},
		{"mcast:10.0.0.1:1234", "is not an IPv4 multicast GROUP:PORT"},
		{"mcast:udp:230.0.0.1:1234", "is not an IPv4 multicast GROUP:PORT"},
		{"mcast:230.0.0.1:1234,localaddr=::1", "option localaddr: \"::1\" is not an IPv4 address"},
		{"tap:averyveryverylongname", "the kernel allows 15"},
		{"tap:zeth,persist=maybe", "option persist: \"maybe\" is not true or false"},
		{"tap:zeth,mtu=20", "option mtu: \"20\" is not a whole number from 68 to 9198"},
		{"tap:zeth,user=root", "only useful with persist=true"},
		{"tap:zeth,persist=true,user=nosuchuser-zsw", "option user: \"nosuchuser-zsw\": no such name"},
		{"packet:eth0,mtu=1500", "option \"mtu\": unknown for packet; it takes: name"},
		{"packet:a/b", "contains '/'"},
		{"slip-listen:unix:/tmp/s,mode=tap", `option mode: "tap" is not eth or ip`},
		{"slip-tty:/dev/ttyS1,baud=fast", `option baud: "fast" is not a whole number`},
		{"slip-pty:/tmp/x,baud=9600", `option "baud": unknown for slip-pty`},
	} {
		_, err := ParseSpec(tc.in)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not say %q", tc.in, err, tc.want)
		}
	}
}

func TestSpecString(t *testing.T) {
	sp, err := ParseSpec("dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001,name=x")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sp.String(), "dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"stream-listen:unix:/tmp/zswitch.sock", "dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001",
		"mcast:230.0.0.1:1234,localaddr=127.0.0.1", "stream-connect:tcp:[::1]:5,name=a,backoff-max=1s", ":::,,=,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		// What parses once parses again, to the same thing.
		again, err := ParseSpec(sp.String())
		if err != nil {
			t.Fatalf("%q parsed, its canonical form %q did not: %v", s, sp.String(), err)
		}
		if again.String() != sp.String() {
			t.Fatalf("%q → %q → %q", s, sp.String(), again.String())
		}
		if sp.Name == "" || (!strings.Contains(s, "name=") && again.Name != sp.Name) {
			t.Fatalf("%q: name %q, then %q", s, sp.Name, again.Name)
		}
	})
}
