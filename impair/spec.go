package impair

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A field is one key of the spec: how to read it, how to write it back,
// and where it lives in a Config. String leaves out fields at their zero
// value, which is every key's default.
type field struct {
	key    string
	set    func(c *Config, v string) error
	clear  func(c *Config)
	format func(c Config) string // "" at the zero value
}

func fieldOf[T comparable](key string, ptr func(*Config) *T, parse func(string) (T, error), format func(T) string) field {
	return field{
		key: key,
		set: func(c *Config, v string) error {
			x, err := parse(v)
			if err != nil {
				return err
			}
			*ptr(c) = x
			return nil
		},
		clear: func(c *Config) { var zero T; *ptr(c) = zero },
		format: func(c Config) string {
			var zero T
			if x := *ptr(&c); x != zero {
				return format(x)
			}
			return ""
		},
	}
}

func probField(key string, ptr func(*Config) *float64) field {
	return fieldOf(key, ptr, parseProb, formatProb)
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// fields lists the keys in the order String writes them.
var fields = []field{
	fieldOf("delay", func(c *Config) *time.Duration { return &c.Delay }, parseDuration, time.Duration.String),
	fieldOf("jitter", func(c *Config) *time.Duration { return &c.Jitter }, parseDuration, time.Duration.String),
	fieldOf("dist", func(c *Config) *Dist { return &c.Dist }, parseDist, Dist.String),
	probField("loss", func(c *Config) *float64 { return &c.Loss }),
	fieldOf("loss-burst", func(c *Config) *float64 { return &c.LossBurst }, parseLossBurst, formatFloat),
	probField("ge-p", func(c *Config) *float64 { return &c.GEP }),
	probField("ge-r", func(c *Config) *float64 { return &c.GER }),
	probField("ge-bad", func(c *Config) *float64 { return &c.GEBad }),
	probField("ge-good", func(c *Config) *float64 { return &c.GEGood }),
	probField("duplicate", func(c *Config) *float64 { return &c.Duplicate }),
	probField("reorder", func(c *Config) *float64 { return &c.Reorder }),
	probField("corrupt", func(c *Config) *float64 { return &c.Corrupt }),
	fieldOf("corrupt-from", func(c *Config) *int { return &c.CorruptFrom }, parseCorruptFrom, formatCorruptFrom),
	fieldOf("rate", func(c *Config) *uint64 { return &c.Rate }, parseRate, formatRate),
	fieldOf("burst", func(c *Config) *uint64 { return &c.Burst }, parseSize, formatSize),
	fieldOf("limit", func(c *Config) *int { return &c.Limit }, parseLimit, strconv.Itoa),
	fieldOf("seed", func(c *Config) *uint64 { return &c.Seed }, parseSeed, func(v uint64) string { return strconv.FormatUint(v, 10) }),
}

func parseDist(v string) (Dist, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "uniform":
		return Uniform, nil
	case "normal":
		return Normal, nil
	}
	return 0, fmt.Errorf("%q is not a distribution: write uniform or normal", v)
}

func parseLossBurst(v string) (float64, error) {
	b, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(b >= 1 && b <= 1e9) {
		return 0, fmt.Errorf("%q is not a mean burst length: write a number of frames, at least 1 (e.g. 4)", v)
	}
	return b, nil
}

// parseCorruptFrom returns an explicit 0 as NoHeader, since 0 in Config
// means the default.
func parseCorruptFrom(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 || n > maxCorruptFrom {
		return 0, fmt.Errorf("%q is not a byte offset: write a number of bytes from 0 to 9216 (14 skips the Ethernet header)", v)
	}
	if n == 0 {
		return NoHeader, nil
	}
	return n, nil
}

func formatCorruptFrom(n int) string {
	if n < 0 {
		return "0"
	}
	return strconv.Itoa(n)
}

func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > MaxLimit {
		return 0, fmt.Errorf("%q is not a queue limit: write a number of frames from 1 to 1000000", v)
	}
	return n, nil
}

func parseSeed(v string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a seed: write an unsigned 64-bit integer", v)
	}
	return n, nil
}

// Keys returns the keys Set accepts, in the order String writes them.
func Keys() []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

// IsKey reports whether Set accepts key.
func IsKey(key string) bool {
	for _, f := range fields {
		if f.key == key {
			return true
		}
	}
	return false
}

// Set sets one key from its text form, as in "loss=1%": delay, jitter
// (durations: 50ms), dist (uniform, normal), loss, ge-p, ge-r, ge-bad,
// ge-good, duplicate, reorder, corrupt (1% or 0.01), loss-burst (mean
// burst length in frames), corrupt-from (bytes), rate (10mbit, 250kbit,
// 125kbps: tc's units), burst (32kb), limit (frames) and seed. An empty
// value returns the key to its default. Set checks the value alone;
// Validate checks how the keys fit together.
func (c *Config) Set(key, value string) error {
	key = strings.ToLower(strings.TrimSpace(key))
	for _, f := range fields {
		if f.key != key {
			continue
		}
		if strings.TrimSpace(value) == "" {
			f.clear(c)
			return nil
		}
		if err := f.set(c, value); err != nil {
			return fmt.Errorf("impair: %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("impair: unknown key %q (keys: %s)", key, strings.Join(Keys(), ", "))
}

// Parse reads a spec of key=value pairs separated by spaces or commas,
// as String writes it, onto the zero Config and validates the result.
func Parse(spec string) (Config, error) {
	var c Config
	for _, kv := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Config{}, fmt.Errorf("impair: %q: want key=value, e.g. delay=50ms", kv)
		}
		if err := c.Set(k, v); err != nil {
			return Config{}, err
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// String writes the keys that differ from the zero Config, space
// separated, in a form Parse reads back to the same Config.
func (c Config) String() string {
	var b strings.Builder
	for _, f := range fields {
		v := f.format(c)
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.key)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}
