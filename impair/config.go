package impair

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultLimit is the most frames a Line holds when Config.Limit is 0, as
// netem's default limit.
const DefaultLimit = 1000

// DefaultCorruptFrom keeps the 14-byte Ethernet header intact, so a
// corrupted frame still reaches its destination and the receiver's
// checksum catches the damage.
const DefaultCorruptFrom = 14

// NoHeader as Config.CorruptFrom lets corruption flip any bit of the
// frame, for frames with no header to protect (IEEE 802.15.4).
const NoHeader = -1

// Bounds that keep the arithmetic on nanosecond clocks far from overflow.
const (
	MaxDelay = time.Hour
	MaxLimit = 1_000_000
	MinRate  = 1_000              // bits/s
	MaxRate  = 10_000_000_000_000 // bits/s (10tbit)
	MaxBurst = 1 << 30            // bytes
	// maxCorruptFrom is past any frame a slot holds (frame.MaxSlotSize).
	maxCorruptFrom = 9216
)

// A Dist is the distribution of the jitter around the delay.
type Dist uint8

const (
	Uniform Dist = iota // delay ± jitter, every value equally likely
	Normal              // jitter is the standard deviation; delays below 0 become 0
)

func (d Dist) String() string {
	switch d {
	case Uniform:
		return "uniform"
	case Normal:
		return "normal"
	}
	return fmt.Sprintf("Dist(%d)", uint8(d))
}

// A Config describes one direction of an impaired link. The zero value
// impairs nothing. Probabilities are fractions from 0 to 1.
//
// Config is comparable: Parse(c.String()) == c for every valid c.
type Config struct {
	Delay  time.Duration // added to every frame (reordered ones excepted)
	Jitter time.Duration // spread of the delay, see Dist; the delay never goes below 0
	Dist   Dist

	// Loss is the chance that a frame is lost. With LossBurst, losses
	// come in bursts of that mean length (in frames) and Loss is the long-run
	// share lost: a Gilbert–Elliott model with r = 1/LossBurst and
	// p = Loss·r/(1−Loss), which loses every frame in the bad state.
	Loss      float64
	LossBurst float64

	// GEP and GER set a Gilbert–Elliott model directly: the chance per
	// frame to go from the good state to the bad one (p) and back (r).
	// GEBad and GEGood are the loss in each state. Mean burst length is
	// 1/r; with GEBad 1 and GEGood 0 the long-run loss is p/(p+r). When
	// GEBad and GEGood are both 0 (a model that would never lose), GEBad
	// means 1: the default of 100 % loss in the bad state.
	GEP, GER      float64
	GEBad, GEGood float64

	Duplicate float64 // chance that a frame is sent twice

	// Reorder is the share of frames that skip the delay and so overtake
	// the frames before them (netem's reorder). It needs a Delay.
	Reorder float64

	// Corrupt is the chance that one random bit of a frame flips, at or
	// after byte CorruptFrom: 0 means DefaultCorruptFrom (after the
	// Ethernet header), NoHeader means from the first byte.
	Corrupt     float64
	CorruptFrom int

	// Rate limits the link to that many bits per second (0: no limit),
	// as a token bucket that holds Burst bytes. With Burst 0, frames leave
	// exactly as fast as the rate allows; a frame larger than the bucket
	// waits until it is full.
	Rate  uint64
	Burst uint64

	// Limit is the most frames the line holds, delayed or waiting for the
	// rate; more are dropped. 0 means DefaultLimit.
	Limit int

	// Seed seeds the random streams: the same seed, the same decisions.
	Seed uint64
}

// IsZero reports whether c impairs nothing. Limit, CorruptFrom and Seed
// change nothing on their own.
func (c Config) IsZero() bool {
	return c.Delay == 0 && c.Jitter == 0 && c.Loss == 0 && c.GEP == 0 &&
		c.Duplicate == 0 && c.Reorder == 0 && c.Corrupt == 0 && c.Rate == 0
}

// Validate reports the first setting that is out of range or needs
// another one, naming its key.
func (c Config) Validate() error {
	for _, p := range []struct {
		key string
		v   float64
	}{
		{"loss", c.Loss}, {"ge-p", c.GEP}, {"ge-r", c.GER}, {"ge-bad", c.GEBad},
		{"ge-good", c.GEGood}, {"duplicate", c.Duplicate}, {"reorder", c.Reorder},
		{"corrupt", c.Corrupt},
	} {
		if err := checkProb(p.v); err != nil {
			return fmt.Errorf("impair: %s: %w", p.key, err)
		}
	}
	checks := []struct {
		key string
		bad bool
		why string
	}{
		{"delay", c.Delay < 0 || c.Delay > MaxDelay, "must be from 0 to 1h"},
		{"jitter", c.Jitter < 0 || c.Jitter > MaxDelay, "must be from 0 to 1h"},
		{"dist", c.Dist > Normal, "must be uniform or normal"},
		{"loss-burst", math.IsNaN(c.LossBurst) || c.LossBurst != 0 && (c.LossBurst < 1 || c.LossBurst > 1e9),
			"must be a mean burst length of at least 1 frame"},
		{"loss-burst", c.LossBurst != 0 && (c.Loss == 0 || c.Loss == 1), "needs loss= above 0 % and below 100 %"},
		{"loss", c.Loss != 0 && c.GEP != 0, "loss= and ge-p= are two loss models: set one of them"},
		{"ge-r", c.GEP != 0 && c.GER == 0, "must be above 0 with ge-p=, or the link never leaves the bad state"},
		{"ge-r", c.GEP == 0 && c.GER != 0, "needs ge-p="},
		{"ge-bad", c.GEP == 0 && c.GEBad != 0, "needs ge-p="},
		{"ge-good", c.GEP == 0 && c.GEGood != 0, "needs ge-p="},
		{"reorder", c.Reorder != 0 && c.Delay == 0, "needs delay=: reordered frames skip the delay, so without one none can overtake"},
		{"corrupt-from", c.CorruptFrom < NoHeader || c.CorruptFrom > maxCorruptFrom, "must be from 0 to 9216 bytes"},
		{"rate", c.Rate != 0 && (c.Rate < MinRate || c.Rate > MaxRate), "must be from 1kbit to 10tbit"},
		{"burst", c.Burst > MaxBurst, "must be at most 1gb"},
		{"burst", c.Burst != 0 && c.Rate == 0, "needs rate="},
		{"limit", c.Limit < 0 || c.Limit > MaxLimit, "must be from 1 to 1000000 frames"},
	}
	for _, k := range checks {
		if k.bad {
			return fmt.Errorf("impair: %s: %s", k.key, k.why)
		}
	}
	if c.LossBurst != 0 {
		if _, _, err := c.burstModel(); err != nil {
			return fmt.Errorf("impair: loss-burst: %w", err)
		}
	}
	return nil
}

func checkProb(v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return errors.New("must be from 0 % to 100 % (0 to 1)")
	}
	return nil
}

// burstModel turns Loss and LossBurst into Gilbert–Elliott p and r.
func (c Config) burstModel() (p, r float64, err error) {
	r = 1 / c.LossBurst
	p = c.Loss * r / (1 - c.Loss)
	if p > 1 {
		return 0, 0, fmt.Errorf("bursts of %.4g frames cannot lose %.4g %% of frames; they need to be at least %.4g long",
			c.LossBurst, 100*c.Loss, c.Loss/(1-c.Loss))
	}
	return p, r, nil
}

// limit is the effective queue limit.
func (c Config) limit() int {
	if c.Limit == 0 {
		return DefaultLimit
	}
	return c.Limit
}

// corruptFrom is the effective first byte corruption may flip.
func (c Config) corruptFrom() int {
	switch {
	case c.CorruptFrom == 0:
		return DefaultCorruptFrom
	case c.CorruptFrom < 0:
		return 0
	}
	return c.CorruptFrom
}

// EffectiveLimit is the most frames a line with this Config holds.
func (c Config) EffectiveLimit() int { return c.limit() }

// MeanLoss is the long-run share of frames the Config loses: Loss, or the
// Gilbert–Elliott model's stationary loss p/(p+r)·bad + r/(p+r)·good.
func (c Config) MeanLoss() float64 {
	if c.GEP == 0 {
		return c.Loss
	}
	bad, good := c.GEBad, c.GEGood
	if bad == 0 && good == 0 {
		bad = 1
	}
	inBad := c.GEP / (c.GEP + c.GER)
	return inBad*bad + (1-inBad)*good
}
