package config

import (
	"strings"
	"testing"
	"time"

	"github.com/zswitch/zswitch/impair"
)

func TestImpairmentOptions(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		in, out impair.Config
	}{
		{"tap:zeth,delay=50ms,jitter=5ms", impair.Config{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond},
			impair.Config{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond}},
		{"stream-listen:unix:/tmp/x.sock,in.loss=5%,out.delay=20ms", impair.Config{Loss: 0.05}, impair.Config{Delay: 20 * time.Millisecond}},
		{"tap:zeth,loss=1%,in.loss=2%,seed=9", impair.Config{Loss: 0.02, Seed: 9}, impair.Config{Loss: 0.01, Seed: 9}},
		{"tap:zeth,out.rate=1mbit,out.limit=50", impair.Config{}, impair.Config{Rate: 1_000_000, Limit: 50}},
		{"wpan-pipe:/tmp/ip-stack,loss=10%,out.delay=5ms", impair.Config{Loss: 0.1}, impair.Config{Loss: 0.1, Delay: 5 * time.Millisecond}},
	} {
		sp, err := ParseSpec(tc.spec)
		if err != nil {
			t.Errorf("%s: %v", tc.spec, err)
			continue
		}
		in, out, err := Impairments(sp)
		if err != nil || in != tc.in || out != tc.out {
			t.Errorf("%s: in %v, out %v, %v; want in %v, out %v", tc.spec, in, out, err, tc.in, tc.out)
		}
		if Segment(sp) == "" {
			pc, err := PortConfig(sp)
			if err != nil || pc.Impair != (impair.Link{In: tc.in, Out: tc.out}) {
				t.Errorf("%s: port config %+v, %v", tc.spec, pc.Impair, err)
			}
		}
	}
}

func TestImpairmentOptionErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"tap:zeth,delay=soon":              `option delay: "soon" is not`,
		"tap:zeth,in.loss=150%":            "option in.loss: must be from 0 % to 100 %",
		"tap:zeth,reorder=10%":             "impairment: reorder: needs delay=",
		"tap:zeth,out.reorder=10%":         "impairment out: reorder: needs delay=",
		"tap:zeth,sideways.loss=1%":        `option "sideways.loss": unknown for tap`,
		"wpan-pipe:/tmp/ip-stack,vlan=100": `option "vlan": unknown for wpan-pipe`,
	} {
		_, err := ParseSpec(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", spec, err, want)
		}
	}
}

func TestImpairmentRuntime(t *testing.T) {
	sp, err := ParseSpec("wpan-pipe:/tmp/ip-stack,loss=1%")
	if err != nil {
		t.Fatal(err)
	}
	if !RuntimeKey(sp, "out.delay") || RuntimeKey(sp, "vlan") || RuntimeKey(sp, "medium") {
		t.Error("wpan runtime keys: want impairments only")
	}
	next, err := WithOptions(sp, map[string]string{"loss": "", "out.delay": "30ms"})
	if err != nil {
		t.Fatal(err)
	}
	in, out, _ := Impairments(next)
	if !in.IsZero() || out.Delay != 30*time.Millisecond || out.Loss != 0 {
		t.Errorf("after change: in %v, out %v", in, out)
	}
	if _, err := WithOptions(sp, map[string]string{"reorder": "5%"}); err == nil || !strings.Contains(err.Error(), "reorder") {
		t.Errorf("reorder without delay at run time: %v", err)
	}
	if got := RuntimeOptions(next); got["out.delay"] != "30ms" || len(got) != 1 {
		t.Errorf("runtime options %v", got)
	}
}
