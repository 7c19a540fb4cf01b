package impair

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Config
	}{
		{"", Config{}},
		{"delay=50ms jitter=5ms dist=normal", Config{Delay: 50 * time.Millisecond, Jitter: 5 * time.Millisecond, Dist: Normal}},
		{"loss=1%", Config{Loss: 0.01}},
		{"loss=0.01", Config{Loss: 0.01}},
		{"loss=5%,loss-burst=4", Config{Loss: 0.05, LossBurst: 4}},
		{"ge-p=1% ge-r=20% ge-bad=100% ge-good=0%", Config{GEP: 0.01, GER: 0.2, GEBad: 1}},
		{"duplicate=1% reorder=25% delay=10ms", Config{Duplicate: 0.01, Reorder: 0.25, Delay: 10 * time.Millisecond}},
		{"corrupt=0.1%", Config{Corrupt: 0.001}},
		{"corrupt=0.1% corrupt-from=0", Config{Corrupt: 0.001, CorruptFrom: NoHeader}},
		{"corrupt-from=14", Config{CorruptFrom: 14}},
		{"rate=10mbit burst=32kb limit=1000 seed=42", Config{Rate: 10e6, Burst: 32 << 10, Limit: 1000, Seed: 42}},
		{"rate=1.5mbit", Config{Rate: 1_500_000}},
		{"rate=125kbps", Config{Rate: 1e6}},
		{"rate=1gibit", Config{Rate: 1 << 30}},
		{"rate=2000", Config{Rate: 2000}},
		{"rate=1mbit burst=1500", Config{Rate: 1e6, Burst: 1500}},
		{"rate=1mbit burst=1mbit", Config{Rate: 1e6, Burst: 1 << 17}},
		{"seed=0x10", Config{Seed: 16}},
		{"loss=3% loss=", Config{}}, // an empty value resets
		{"DELAY=1s", Config{Delay: time.Second}},
	} {
		got, err := Parse(tc.spec)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.spec, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
		back, err := Parse(got.String())
		if err != nil || back != got {
			t.Errorf("Parse(%q.String() = %q) = %+v, %v", tc.spec, got.String(), back, err)
		}
	}
}

// TestParseErrors: every error names the key and says what is accepted.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"delay=fast", "delay: \"fast\" is not a duration: write e.g. 50ms"},
		{"delay=-1ms", "delay:"},
		{"delay=2h", "delay: must be from 0 to 1h"},
		{"loss=5", "loss: \"5\" is above 1: for 5 % write 5%"},
		{"loss=150%", "loss: must be from 0 % to 100 %"},
		{"loss=NaN", "loss: \"NaN\" is not a probability"},
		{"dist=pareto", "dist: \"pareto\" is not a distribution: write uniform or normal"},
		{"rate=fast", "rate: \"fast\" is not a rate"},
		{"rate=10", "rate: must be from 1kbit"},
		{"burst=32kb", "burst: needs rate="},
		{"rate=1mbit burst=lots", "burst: \"lots\" is not a size"},
		{"limit=0", "limit: \"0\" is not a queue limit"},
		{"seed=-1", "seed: \"-1\" is not a seed"},
		{"corrupt-from=-2", "corrupt-from:"},
		{"reorder=25%", "reorder: needs delay="},
		{"loss=1% ge-p=1% ge-r=10%", "loss: loss= and ge-p= are two loss models"},
		{"ge-p=1%", "ge-r: must be above 0 with ge-p="},
		{"ge-r=10%", "ge-r: needs ge-p="},
		{"loss-burst=4", "loss-burst: needs loss="},
		{"loss-burst=0.5 loss=1%", "loss-burst: \"0.5\" is not a mean burst length"},
		{"loss=90% loss-burst=2", "loss-burst: bursts of 2 frames cannot lose 90 % of frames; they need to be at least 9 long"},
		{"color=red", "impair: unknown key \"color\" (keys: delay, jitter"},
		{"delay", "want key=value"},
	} {
		_, err := Parse(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error %v, want it to contain %q", tc.spec, err, tc.want)
		}
	}
}

func TestIsZero(t *testing.T) {
	if !(Config{}).IsZero() || !(Config{Limit: 5, Seed: 9, CorruptFrom: NoHeader}).IsZero() {
		t.Error("a config that impairs nothing is not zero")
	}
	for _, c := range []Config{{Delay: 1}, {Jitter: 1}, {Loss: 0.1}, {GEP: 0.1, GER: 0.1}, {Duplicate: 0.1}, {Corrupt: 0.1}, {Rate: 1e6}} {
		if c.IsZero() {
			t.Errorf("%v is zero", c)
		}
	}
}

func TestKeys(t *testing.T) {
	keys := Keys()
	if len(keys) != 17 || keys[0] != "delay" || keys[len(keys)-1] != "seed" {
		t.Fatalf("Keys() = %v", keys)
	}
	for _, k := range keys {
		if !IsKey(k) {
			t.Errorf("IsKey(%q) false", k)
		}
	}
	if IsKey("name") {
		t.Error("IsKey(name) true")
	}
}

func TestStringFormats(t *testing.T) {
	c := Config{Delay: 50 * time.Millisecond, Loss: 0.07, Rate: 10e6, Burst: 32 << 10, CorruptFrom: NoHeader, Corrupt: 1e-5}
	want := "delay=50ms loss=7% corrupt=0.001% corrupt-from=0 rate=10mbit burst=32kb"
	if got := c.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
