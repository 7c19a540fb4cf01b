package control

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/zswitch/zswitch/fdb"
)

// fakeSwitch keeps ports and a MAC table in maps.
type fakeSwitch struct {
	mu    sync.Mutex
	ports []PortInfo
	fdb   map[fdb.Key]FDBEntry
}

func newFake() *fakeSwitch {
	return &fakeSwitch{
		ports: []PortInfo{{Name: "lab", Kind: "stream-listen", Listener: true}, {Name: "lab/1", Kind: "stream-listen", LinkUp: true, RxFrames: 3}},
		fdb:   map[fdb.Key]FDBEntry{},
	}
}

func (f *fakeSwitch) Ports() []PortInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ports)
}

func (f *fakeSwitch) Port(name string) (PortInfo, error) {
	for _, p := range f.Ports() {
		if p.Name == name {
			return p, nil
		}
	}
	return PortInfo{}, NotFound("no port %q", name)
}

func (f *fakeSwitch) AddPort(spec string) (PortInfo, error) {
	kind, addr, ok := strings.Cut(spec, ":")
	if !ok {
		return PortInfo{}, Invalid("port %q: want KIND:ADDRESS", spec)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.ports {
		if p.Name == addr {
			return PortInfo{}, Conflict("name %q is already used", addr)
		}
	}
	p := PortInfo{Name: addr, Kind: kind, Spec: spec}
	f.ports = append(f.ports, p)
	return p, nil
}

func (f *fakeSwitch) SetOptions(name string, opts map[string]string) (PortInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.ports, func(p PortInfo) bool { return p.Name == name })
	if i < 0 {
		return PortInfo{}, NotFound("no port %q", name)
	}
	for k, v := range opts {
		if k != "vlan" {
			return PortInfo{}, Invalid("option %q cannot change at run time", k)
		}
		f.ports[i].Options = map[string]string{k: v}
		f.ports[i].Config = "access " + v
	}
	return f.ports[i], nil
}

func (f *fakeSwitch) RemovePort(name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.ports, func(p PortInfo) bool { return p.Name == name })
	if i < 0 {
		return nil, NotFound("no port %q", name)
	}
	f.ports = slices.Delete(f.ports, i, i+1)
	return []string{name}, nil
}

func (f *fakeSwitch) FDB() ([]FDBEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FDBEntry
	for _, e := range f.fdb {
		out = append(out, e)
	}
	return out, nil
}

func (f *fakeSwitch) AddStatic(mac fdb.MAC, vlan uint16, port string) error {
	if _, err := f.Port(port); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fdb[fdb.Key{MAC: mac, VLAN: vlan}] = FDBEntry{MAC: mac, VLAN: vlan, Port: port, Static: true}
	return nil
}

func (f *fakeSwitch) DeleteFDB(mac fdb.MAC, vlan int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k := range f.fdb {
		if k.MAC == mac && (vlan < 0 || int(k.VLAN) == vlan) {
			delete(f.fdb, k)
			n++
		}
	}
	return n, nil
}

func (f *fakeSwitch) FlushFDB(port string, withStatic bool) (int, error) {
	if port != "" {
		if _, err := f.Port(port); err != nil {
			return 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for k, e := range f.fdb {
		if (port == "" || e.Port == port) && (withStatic || !e.Static) {
			delete(f.fdb, k)
			n++
		}
	}
	return n, nil
}

// TestControlHandlerStatus checks each endpoint's status code and that
// every error is a JSON object with a message.
func TestControlHandlerStatus(t *testing.T) {
	h := Handler(newFake())
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string // in the body
	}{
		{"GET", "/v1/ports", "", 200, `"name": "lab/1"`},
		{"GET", "/v1/ports/lab/1", "", 200, `"rx_frames": 3`},
		{"GET", "/v1/ports/lab%2F1", "", 200, `"rx_frames": 3`},
		{"GET", "/v1/ports/nope", "", 404, `"error": "no port \"nope\""`},
		{"POST", "/v1/ports", `{"spec": "dgram:vm3"}`, 201, `"name": "vm3"`},
		{"POST", "/v1/ports", `{"spec": "dgram:vm3"}`, 409, `already used`},
		{"POST", "/v1/ports", `{"spec": "bogus"}`, 400, `want KIND:ADDRESS`},
		{"POST", "/v1/ports", `{}`, 400, `missing \"spec\"`},
		{"POST", "/v1/ports", `{"spec": 1}`, 400, `request body`},
		{"POST", "/v1/ports", `{"spek": "x"}`, 400, `unknown field`},
		{"POST", "/v1/ports", ``, 400, `empty body`},
		{"PATCH", "/v1/ports/lab/1", `{"options": {"vlan": "100"}}`, 200, `"config": "access 100"`},
		{"PATCH", "/v1/ports/lab/1", `{"options": {"mtu": "100"}}`, 400, `cannot change at run time`},
		{"PATCH", "/v1/ports/lab/1", `{}`, 400, `missing \"options\"`},
		{"PATCH", "/v1/ports/nope", `{"options": {"vlan": "1"}}`, 404, `no port`},
		{"DELETE", "/v1/ports/vm3", "", 200, `"removed": [`},
		{"DELETE", "/v1/ports/vm3", "", 404, `no port`},
		{"POST", "/v1/fdb", `{"mac": "52:54:00:00:00:01", "port": "lab/1"}`, 201, `"static": true`},
		{"POST", "/v1/fdb", `{"mac": "52:54:00:00:00:01", "vlan": 7, "port": "lab/1"}`, 201, `"vlan": 7`},
		{"POST", "/v1/fdb", `{"mac": "52:54:00:00:00:02", "port": "gone"}`, 404, `no port`},
		{"POST", "/v1/fdb", `{"mac": "nonsense", "port": "lab/1"}`, 400, `invalid MAC address`},
		{"POST", "/v1/fdb", `{"mac": "01:00:5e:00:00:01", "port": "lab/1"}`, 400, `group address`},
		{"POST", "/v1/fdb", `{"mac": "52:54:00:00:00:01", "vlan": 4095, "port": "lab/1"}`, 400, `outside 0..4094`},
		{"POST", "/v1/fdb", `{"mac": "52:54:00:00:00:01"}`, 400, `missing \"port\"`},
		{"GET", "/v1/fdb", "", 200, `"mac": "52:54:00:00:00:01"`},
		{"DELETE", "/v1/fdb/52:54:00:00:00:01?vlan=7", "", 200, `"removed": 1`},
		{"DELETE", "/v1/fdb/52:54:00:00:00:01?vlan=7", "", 404, `not in the MAC table in vlan 7`},
		{"DELETE", "/v1/fdb/52:54:00:00:00:01?vlan=x", "", 400, `vlan \"x\" is not a number`},
		{"DELETE", "/v1/fdb/zz", "", 400, `invalid MAC`},
		{"DELETE", "/v1/fdb", "", 200, `"removed": 0`},
		{"DELETE", "/v1/fdb?port=lab/1&static=true", "", 200, `"removed": 1`},
		{"DELETE", "/v1/fdb?port=nope", "", 404, `no port`},
		{"DELETE", "/v1/fdb?static=maybe", "", 400, `want true or false`},
		{"GET", "/v2/ports", "", 404, `no endpoint GET /v2/ports`},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", tc.method, tc.path, tc.body, rec.Code, body, tc.status, tc.want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if rec.Code >= 400 {
			var e ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Errorf("%s %s: error body %q is not {\"error\": …}", tc.method, tc.path, body)
			}
		}
	}
}

// TestControlClientOverSocket drives the fake through Serve and Client.
func TestControlClientOverSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl")
	srv, err := Serve(path, 0, Handler(newFake()))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := NewClient(path)
	ps, err := c.Ports()
	if err != nil || len(ps) != 2 {
		t.Fatalf("Ports: %v %v", ps, err)
	}
	if p, err := c.Port("lab/1"); err != nil || p.RxFrames != 3 {
		t.Fatalf("Port(lab/1): %+v %v", p, err)
	}
	if _, err := c.AddPort("dgram:x/y"); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Port("x/y"); err != nil || p.Kind != "dgram" {
		t.Fatalf("Port(x/y): %+v %v", p, err)
	}
	if _, err := c.AddPort("dgram:x/y"); StatusOf(err) != http.StatusConflict || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("duplicate add: %v", err)
	}
	if names, err := c.RemovePort("x/y"); err != nil || !slices.Equal(names, []string{"x/y"}) {
		t.Fatalf("RemovePort: %v %v", names, err)
	}
	if err := c.AddStatic("52:54:00:00:00:09", 3, "lab/1"); err != nil {
		t.Fatal(err)
	}
	es, err := c.FDB()
	if err != nil || len(es) != 1 || es[0].VLAN != 3 || es[0].MAC.String() != "52:54:00:00:00:09" {
		t.Fatalf("FDB: %+v %v", es, err)
	}
	if n, err := c.FlushFDB("", false); n != 0 || err != nil {
		t.Fatalf("flush without static: %d %v", n, err)
	}
	if n, err := c.DeleteFDB("52:54:00:00:00:09", -1); n != 1 || err != nil {
		t.Fatalf("DeleteFDB: %d %v", n, err)
	}
	if _, err := c.DeleteFDB("52:54:00:00:00:09", -1); StatusOf(err) != http.StatusNotFound {
		t.Fatalf("DeleteFDB of a missing MAC: %v", err)
	}
}

// TestControlServeSocket: mode 0600, a stale socket replaced, a live one
// and a regular file left alone, the file removed on Close.
func TestControlServeSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ctl")

	// A stale socket: bound, never unlinked, nobody listening.
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()

	srv, err := Serve(path, 0, Handler(newFake()))
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v: %v", fi.Mode(), err)
	}
	if _, err := Serve(path, 0, Handler(newFake())); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Serve on a live socket: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := NewClient(path).Ports(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("client without a server: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("files left behind: %v", left)
	}

	srv, err = Serve(path, 0o660, Handler(newFake()))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v, want 0660", fi.Mode().Perm())
	}
	srv.Close()

	os.WriteFile(path, []byte("not a socket"), 0o644)
	if _, err := Serve(path, 0, Handler(newFake())); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Serve over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not a socket" {
		t.Fatal("the regular file was touched")
	}
}
