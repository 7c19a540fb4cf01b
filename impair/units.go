package impair

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseProb reads a probability as a percentage ("1%", "0.5%") or a
// fraction ("0.01").
func parseProb(s string) (float64, error) {
	num, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a probability: write a percentage (1%%) or a fraction (0.01)", s)
	}
	if pct {
		v /= 100
	} else if v > 1 {
		return 0, fmt.Errorf("%q is above 1: for %s %% write %s%%", s, num, num)
	}
	return v, checkProb(v)
}

// formatProb writes a probability as the shortest percentage that reads
// back exactly (0.07 is "7%", though 0.07·100 is 7.000000000000001), else
// as a fraction.
func formatProb(v float64) string {
	for decimals := 0; decimals <= 10; decimals++ {
		pct := strconv.FormatFloat(v*100, 'f', decimals, 64) + "%"
		if back, err := parseProb(pct); err == nil && back == v {
			return pct
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// parseDuration reads a Go duration ("50ms", "1.5s", "100us").
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.ToLower(strings.TrimSpace(s)))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration: write e.g. 50ms, 1.5s or 100us", s)
	}
	return d, nil
}

// A unit is a suffix and how many base units (bits or bytes) it stands for.
type unit struct {
	suffix string
	mult   float64
}

// rateUnits are tc's: bit and its SI and IEC multiples, and bps (bytes
// per second) and its multiples. Longer suffixes come first.
var rateUnits = []unit{
	{"kibit", 1 << 10}, {"mibit", 1 << 20}, {"gibit", 1 << 30}, {"tibit", 1 << 40},
	{"kibps", 8 << 10}, {"mibps", 8 << 20}, {"gibps", 8 << 30}, {"tibps", 8 << 40},
	{"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12},
	{"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"tbps", 8e12},
	{"bit", 1}, {"bps", 8}, {"", 1},
}

// sizeUnits are tc's: b, k/kb, m/mb, g/gb in powers of 1024 bytes, and
// kbit, mbit, gbit (1024-based, in bits).
var sizeUnits = []unit{
	{"kbit", 1 << 7}, {"mbit", 1 << 17}, {"gbit", 1 << 27},
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}, {"", 1},
}

var errUnit = errors.New("unknown unit")

// parseUnits reads a non-negative number with one of units' suffixes and
// returns it in base units, rounded to an integer.
func parseUnits(s string, units []unit) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || v < 0 {
			return 0, fmt.Errorf("%q is not a number", num)
		}
		v = math.Round(v * u.mult)
		if v >= 1<<63 {
			return 0, errors.New("too large")
		}
		return uint64(v), nil
	}
	return 0, errUnit
}

func parseRate(s string) (uint64, error) {
	v, err := parseUnits(s, rateUnits)
	if err != nil {
		return 0, fmt.Errorf("%q is not a rate (%v): write e.g. 10mbit, 250kbit, 1gbit or 125kbps (bytes/s)", s, err)
	}
	return v, nil
}

func parseSize(s string) (uint64, error) {
	v, err := parseUnits(s, sizeUnits)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (%v): write e.g. 32kb, 1500b or 1mb", s, err)
	}
	return v, nil
}

// formatRate writes bits/s in the largest SI unit that divides them, else
// the largest IEC one.
func formatRate(bits uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"tibit", 1 << 40}, {"gibit", 1 << 30}, {"mibit", 1 << 20}, {"kibit", 1 << 10}} {
		if bits%u.mult == 0 {
			return strconv.FormatUint(bits/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(bits, 10) + "bit"
}

// formatSize writes bytes in the largest 1024-based unit that divides them.
func formatSize(bytes uint64) string {
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}} {
		if bytes%u.mult == 0 {
			return strconv.FormatUint(bytes/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatUint(bytes, 10) + "b"
}
