package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zswitch.yaml")
	os.WriteFile(path, []byte(`
ports:
  - stream-listen:unix:/tmp/zsw-test.sock,name=unix
  - dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001,name=vm2
metrics_addr: 127.0.0.1:9100
log_level: debug
switch:
  slot_size: 9216
  queue_len: 256
  mac_table: {size: 1000, aging: 0s, port_limit: 8, move_limit: 4, move_window: 2s}
  static:
    - {mac: "02:00:5e:00:53:01", port: vm2}
`), 0o644)
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Validate([]string{"mcast:230.0.0.1:1234"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Ports) != 3 || c.Ports[2].Kind != "mcast" || c.Ports[1].Name != "vm2" {
		t.Fatalf("ports: %+v", c.Ports)
	}
	e := c.Engine
	if e.SlotSize != 9216 || e.QueueLen != 256 || e.FDB.MaxEntries != 1000 || e.FDB.AgingTime >= 0 || e.FDB.PortLimit != 8 ||
		e.FDB.MoveLimit != 4 || e.FDB.MoveWindow != 2*time.Second || e.FDB.MoveHold != 0 {
		t.Fatalf("engine config: %+v", e)
	}
	if len(e.Static) != 1 || e.Static[0].Port != "vm2" || e.Static[0].MAC.String() != "02:00:5e:00:53:01" {
		t.Fatalf("static: %+v", e.Static)
	}
	if c.MetricsAddr != "127.0.0.1:9100" || c.LogLevel.String() != "DEBUG" {
		t.Fatalf("%q %v", c.MetricsAddr, c.LogLevel)
	}
}

func TestConfigDefaultsAging(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want time.Duration
	}{
		{"switch: {}", 0}, // fdb's default, 300 s
		{"switch: {mac_table: {aging: 10m}}", 10 * time.Minute},
	} {
		f, err := Decode([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.Validate(nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Engine.FDB.AgingTime != tc.want {
			t.Errorf("%s: aging %v, want %v", tc.yaml, c.Engine.FDB.AgingTime, tc.want)
		}
	}
}

// TestConfigErrors: each mistake fails with the field's path in the file.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"prots: []", `unknown key prots`},
		{"switch: {queue: 5}", `unknown key queue`},
		{"switch: {mac_table: {aging: soon}}", `"soon" is not a duration`},
		{"ports: [stream-listen:unix:/tmp/a, bogus:x]", `ports[1]: port "bogus:x": unknown kind "bogus"`},
		{"ports: [stream-listen:unix:/tmp/a, stream-listen:unix:/tmp/a]", `name "stream-listen:/tmp/a" is already used`},
		{"log_level: loud", `log_level: "loud" is not one of`},
		{"metrics_addr: localhost", `metrics_addr: "localhost" is not HOST:PORT`},
		{"switch: {slot_size: 100000}", `switch.slot_size: 100000 is outside 64..9216`},
		{"switch: {queue_len: 8}", `switch.queue_len: 8 is outside`},
		{"switch: {mac_table: {size: -1}}", `switch.mac_table.size`},
		{"switch: {mac_table: {port_limit: -1}}", `switch.mac_table.port_limit`},
		{"switch: {mac_table: {aging: -5s}}", `switch.mac_table.aging: -5s is negative`},
		{"switch: {mac_table: {aging: 10ms}}", `switch.mac_table.aging: 10ms is under`},
		{"switch: {mac_table: {move_limit: -1}}", `switch.mac_table.move_limit: -1 is negative`},
		{"switch: {mac_table: {move_hold: 5s}}", `switch.mac_table.move_hold: set without move_limit`},
		{"switch: {mac_table: {move_limit: 3, move_window: 1ms}}", `switch.mac_table.move_window: 1ms is outside`},
		{"ports: ['tap:zs0,vlan=5000']", `option vlan (access VLAN): VLAN "5000": want an ID from 1 to 4094`},
		{"ports: ['tap:zs0,vlan=5,trunk=6']", `an access port takes no trunk= or native=`},
		{"ports: ['tap:zs0,trunk=1,2']", `option "2": want key=value`},
		{"ports: ['tap:zs0,trunk=7-3']", `option trunk: VLAN range "7-3" runs backwards`},
		{"ports: ['tap:zs0,native=none,trunk=all,storm-burst=5']", `option storm-burst: needs storm=RATE`},
		{"ports: ['tap:zs0,backpressure=2s']", `option backpressure: 2s is over the limit of 1s a sender may wait`},
		{"ports: ['tap:zs0,backpressure=soon']", `option backpressure: "soon" is not a positive duration like 500ms or 2s`},
		{"ports: ['tap:zs0,sticky=maybe']", `option sticky: "maybe" is not true or false`},
		{"ports: ['wpan-pipe:/tmp/x,vlan=5']", `option "vlan": unknown for wpan-pipe`},
		{"switch: {static: [{mac: zz, port: a}]}", `switch.static[0].mac: invalid MAC address "zz"`},
		{"switch: {static: [{mac: 'ff:ff:ff:ff:ff:ff', port: a}]}", `switch.static[0].mac: ff:ff:ff:ff:ff:ff is a group address`},
		{"switch: {static: [{mac: '02:00:00:00:00:01'}]}", `switch.static[0].port: missing`},
		{"switch: {static: [{mac: '02:00:00:00:00:01', port: a, vlan: 5000}]}", `switch.static[0].vlan: 5000`},
	} {
		f, err := Decode([]byte(tc.yaml))
		if err == nil {
			_, err = f.Validate(nil)
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.yaml)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", tc.yaml, err, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/zswitch.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/zswitch.yaml") {
		t.Fatalf("error %v does not name the file", err)
	}
}
