package medium

import (
	"bufio"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A Link is what one directed pair of nodes sees of the air between them.
type Link struct {
	// Prob is the chance that a frame sent by the first node reaches the
	// second: 1 always, 0 never.
	Prob float64
	// Delay is added to every frame on the link.
	Delay time.Duration
}

// Perfect is the link between nodes a matrix says nothing about.
var Perfect = Link{Prob: 1}

type pairKey struct{ from, to string }

// Links is a link matrix: a Link per directed pair of node names. Pairs
// not set are Perfect unless SetDefault says otherwise. A Links is not
// safe for concurrent use; the medium takes a copy.
type Links struct {
	pairs map[pairKey]Link
	def   Link
}

// NewLinks returns a matrix whose pairs are all Perfect.
func NewLinks() *Links { return &Links{pairs: make(map[pairKey]Link), def: Perfect} }

// Set sets the link from one node to another.
func (l *Links) Set(from, to string, link Link) { l.pairs[pairKey{from, to}] = link }

// SetDefault sets the link of every pair not set with Set.
func (l *Links) SetDefault(link Link) { l.def = link }

// Get returns the link from one node to another.
func (l *Links) Get(from, to string) Link {
	if k, ok := l.pairs[pairKey{from, to}]; ok {
		return k
	}
	return l.def
}

func (l *Links) clone() *Links {
	c := NewLinks()
	c.def = l.def
	for k, v := range l.pairs {
		c.pairs[k] = v
	}
	return c
}

// ReadCSV reads a link matrix in the format of net-tools' virtual-hub:
// N lines of N comma-separated numbers, no header. The number in row i,
// column j is the probability that a frame node i sends reaches node j
// (1 always, 0 never, 0.7 for 70 %); the diagonal is ignored (a node
// never hears itself). names[i] is node i's name in the medium; nil names
// the nodes "1" to "N", as virtual-hub's QEMU_PIPE_ID does.
//
// Two extensions, which virtual-hub files never contain: a cell may add a
// latency after a slash, as a Go duration ("0.9/5ms"), and blank lines and
// lines starting with '#' are skipped.
func ReadCSV(r io.Reader, names []string) (*Links, error) {
	var rows [][]Link
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		var row []Link
		for col, cell := range strings.Split(text, ",") {
			l, err := parseCell(strings.TrimSpace(cell))
			if err != nil {
				return nil, fmt.Errorf("link matrix line %d column %d: %w", line, col+1, err)
			}
			row = append(row, l)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("link matrix: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("link matrix: empty")
	}
	for i, row := range rows {
		if len(row) != len(rows) {
			return nil, fmt.Errorf("link matrix: row %d has %d columns, want %d (the matrix is square)", i+1, len(row), len(rows))
		}
	}
	if names == nil {
		for i := range rows {
			names = append(names, strconv.Itoa(i+1))
		}
	}
	if len(names) != len(rows) {
		return nil, fmt.Errorf("link matrix: %d rows for %d node names", len(rows), len(names))
	}
	l := NewLinks()
	for i, row := range rows {
		for j, link := range row {
			if i != j {
				l.Set(names[i], names[j], link)
			}
		}
	}
	return l, nil
}

func parseCell(s string) (Link, error) {
	p, d, hasDelay := strings.Cut(s, "/")
	prob, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
	if err != nil || math.IsNaN(prob) || prob < 0 || prob > 1 {
		return Link{}, fmt.Errorf("probability %q is not a number from 0 to 1", p)
	}
	l := Link{Prob: prob}
	if hasDelay {
		if l.Delay, err = time.ParseDuration(strings.TrimSpace(d)); err != nil || l.Delay < 0 {
			return Link{}, fmt.Errorf("latency %q is not a duration", d)
		}
	}
	return l, nil
}

// A linkState is one directed pair at run time: its settings, which
// SetLink changes at any time, and its random stream, which only the
// sending node's ingress goroutine touches.
type linkState struct {
	prob  atomic.Uint64 // math.Float64bits of Link.Prob
	delay atomic.Int64  // nanoseconds
	rng   rand.PCG
}

func (s *linkState) set(l Link) {
	s.prob.Store(math.Float64bits(l.Prob))
	s.delay.Store(int64(l.Delay))
}

// deliver advances the pair's random stream by one draw and reports
// whether this frame gets through.
func (s *linkState) deliver(prob float64) bool {
	u := float64(s.rng.Uint64()>>11) * 0x1p-53 // uniform in [0, 1)
	return u < prob
}

// stateLocked returns the state of a pair, made on first use with its own
// stream: seeded from Config.Seed and a hash of the two names, so it does
// not depend on when or in which order the nodes attached.
func (m *Medium) stateLocked(from, to string) *linkState {
	k := pairKey{from, to}
	if s, ok := m.states[k]; ok {
		return s
	}
	h := fnv.New64a()
	io.WriteString(h, from)
	h.Write([]byte{0})
	io.WriteString(h, to)
	s := &linkState{}
	s.rng.Seed(m.cfg.Seed, h.Sum64())
	s.set(m.links.Get(from, to))
	m.states[k] = s
	return s
}

// SetLink changes the link from one node to another at run time,
// starting a link matrix (all other pairs Perfect) if there was none.
func (m *Medium) SetLink(from, to string, l Link) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.links == nil {
		m.links = NewLinks()
		m.links.Set(from, to, l)
		m.publishLocked(m.table.Load().nodes)
	}
	m.links.Set(from, to, l)
	m.stateLocked(from, to).set(l)
}
