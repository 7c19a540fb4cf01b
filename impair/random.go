package impair

import "math/rand/v2"

// A stream is one seeded random sequence. Each kind of decision draws from
// its own, so enabling one impairment does not shift another's choices.
type stream struct {
	src rand.PCG
	rng *rand.Rand // over src; made once, so drawing never allocates
}

// Stream identifiers: PCG's second seed word, so equal seeds still give
// each kind of decision a different sequence.
const (
	streamLoss uint64 = iota + 0x696d7061697200 // "impair\0" + n
	streamDuplicate
	streamCorrupt
	streamReorder
	streamDelay
)

func (s *stream) seed(seed, id uint64) {
	s.src.Seed(seed, id)
	if s.rng == nil {
		s.rng = rand.New(&s.src)
	}
}

// chance reports true with probability p. It draws nothing when p is 0 or
// 1, where the answer is certain.
func (s *stream) chance(p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return s.rng.Float64() < p
}

// lossModel decides losses: independent ones (Bernoulli) or bursts from a
// two-state Gilbert–Elliott chain.
type lossModel struct {
	random     float64 // independent loss; unused when burst is set
	burst      bool
	p, r       float64 // good→bad, bad→good
	good, bad  float64 // loss per state
	inBadState bool
}

func newLossModel(c Config) lossModel {
	switch {
	case c.LossBurst != 0:
		p, r, _ := c.burstModel() // Validate has checked it
		return lossModel{burst: true, p: p, r: r, bad: 1}
	case c.GEP != 0:
		m := lossModel{burst: true, p: c.GEP, r: c.GER, good: c.GEGood, bad: c.GEBad}
		if m.good == 0 && m.bad == 0 {
			m.bad = 1 // the default: a model that never loses means this
		}
		return m
	}
	return lossModel{random: c.Loss}
}

// lost decides one frame: by the current state, then the chain moves on.
func (m *lossModel) lost(s *stream) bool {
	if !m.burst {
		return s.chance(m.random)
	}
	var lost bool
	if m.inBadState {
		lost = s.chance(m.bad)
		m.inBadState = !s.chance(m.r)
	} else {
		lost = s.chance(m.good)
		m.inBadState = s.chance(m.p)
	}
	return lost
}
