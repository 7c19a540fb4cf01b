package impair

import "testing"

// FuzzParseRoundTrip: whatever Parse accepts, String writes in a form
// Parse reads back to the same Config, and writing that again gives the
// same text. The committed corpus is in testdata/fuzz/FuzzParseRoundTrip.
func FuzzParseRoundTrip(f *testing.F) {
	for _, s := range []string{
		"delay=50ms jitter=5ms dist=normal loss=1%",
		"ge-p=1% ge-r=20% ge-bad=100% ge-good=0%",
		"loss=5% loss-burst=4",
		"duplicate=1% reorder=25% delay=1s corrupt=0.1% corrupt-from=0",
		"rate=10mbit burst=32kb limit=1000 seed=42",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := Parse(spec)
		if err != nil {
			return
		}
		s := c.String()
		back, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) = %+v; Parse(its String %q): %v", spec, c, s, err)
		}
		if back != c {
			t.Fatalf("Parse(%q) = %+v; Parse(%q) = %+v", spec, c, s, back)
		}
		if again := back.String(); again != s {
			t.Fatalf("String %q, then %q", s, again)
		}
	})
}
