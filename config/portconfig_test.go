package config

import "testing"

func TestPortConfigFromSpec(t *testing.T) {
	for spec, want := range map[string]string{
		"tap:zeth":                                        "trunk all native 1",
		"tap:zeth,vlan=100":                               "access 100",
		"packet:veth0,trunk=100+200,native=none":          "trunk 100+200 no native",
		"stream-listen:unix:/tmp/s,trunk=10-12,native=10": "trunk 10-12 native 10",
		"dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001,mac-limit=2,sticky=true,isolated=1,storm=500": "trunk all native 1, mac_limit 2, sticky, isolated, storm 500/s",
		"stream-listen:unix:/tmp/s,backpressure=20ms":                                                 "trunk all native 1, backpressure 20ms",
		"stream-listen:unix:/tmp/s,backpressure=on":                                                   "trunk all native 1, backpressure 100ms",
		"stream-listen:unix:/tmp/s,backpressure=off":                                                  "trunk all native 1",
	} {
		sp, err := ParseSpec(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		c, err := PortConfig(sp)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if c.String() != want {
			t.Errorf("%s: %q, want %q", spec, c.String(), want)
		}
	}
}
