package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
)

// Config tunes the engine. The zero value is usable.
type Config struct {
	// SlotSize is the largest frame the switch carries (default 2048; up
	// to frame.MaxSlotSize for jumbo frames).
	SlotSize int
	// QueueLen is each egress port's queue limit in frames (default 1024,
	// like Linux's txqueuelen); beyond it frames are tail-dropped.
	QueueLen int
	// FDB sets the MAC table's size, aging and per-port limit.
	FDB fdb.Config
	// Static entries are installed whenever a port of that name attaches.
	Static []StaticEntry
	// Now is the clock (tests inject one); default time.Now.
	Now func() time.Time
	// Logger receives lifecycle events, never per-frame lines.
	Logger *slog.Logger
}

// A StaticEntry pins a MAC to a port by name.
type StaticEntry struct {
	MAC  fdb.MAC
	VLAN uint16
	Port string
}

const (
	DefaultQueueLen = 1024
	// readAhead is how many frames an ingress goroutine holds while it waits
	// in ReadFrames; the pool's limit reserves them for every port.
	readAhead = maxBatch
)

// Engine is the switch. Use New; it is safe for concurrent use.
type Engine struct {
	log     *slog.Logger
	cfg     Config
	fdb     *fdb.Table
	pool    *frame.Pool
	batches batchPool

	table atomic.Pointer[portTable] // immutable snapshot, replaced on attach/detach

	lastMoveLog atomic.Int64 // unix ns of the last MAC-move warning
	caps        captureSet   // running captures (capture.go)

	mu        sync.Mutex // guards the fields below, and serialises attach/detach
	byName    map[string]*Port
	nextID    uint16
	listeners map[*listenerState]struct{}
	closed    bool

	wg        sync.WaitGroup // every goroutine the engine started
	done      chan struct{}  // closed by Close
	sweepStop chan struct{}
}

// portTable is one published set of ports.
type portTable struct {
	byID []*Port // indexed by port id; nil where detached
	list []*Port // the attached ports, for flooding
}

// port returns the port with this id, or nil.
func (t *portTable) port(id uint16) *Port {
	if int(id) < len(t.byID) {
		return t.byID[id]
	}
	return nil
}

// New returns an engine with no ports. Close stops it.
func New(cfg Config) (*Engine, error) {
	if cfg.SlotSize == 0 {
		cfg.SlotSize = frame.DefaultSlotSize
	}
	if cfg.SlotSize < 64 || cfg.SlotSize > frame.MaxSlotSize {
		return nil, fmt.Errorf("engine: slot size %d out of range 64..%d", cfg.SlotSize, frame.MaxSlotSize)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueLen < maxBatch {
		return nil, fmt.Errorf("engine: queue length %d below the batch size %d", cfg.QueueLen, maxBatch)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		log:       cfg.Logger,
		cfg:       cfg,
		fdb:       fdb.New(cfg.FDB),
		pool:      frame.NewPool(0, cfg.SlotSize),
		batches:   make(batchPool, 4096),
		byName:    make(map[string]*Port),
		listeners: make(map[*listenerState]struct{}),
		done:      make(chan struct{}),
		sweepStop: make(chan struct{}),
	}
	e.table.Store(&portTable{})
	e.wg.Go(e.sweep)
	return e, nil
}

// FDB returns the MAC table, for the control API.
func (e *Engine) FDB() *fdb.Table { return e.fdb }

// Pool returns the frame pool, for metrics.
func (e *Engine) Pool() *frame.Pool { return e.pool }

// Config returns the configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// sweep ages the MAC table. Aging is checked every second, so entries live
// between AgingTime and AgingTime+1s, well within 802.1D's tolerance.
func (e *Engine) sweep() {
	if e.fdb.Config().AgingTime < 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if n := e.fdb.Expire(e.cfg.Now().UnixMilli()); n > 0 {
				e.log.Debug("fdb aged", "entries", n)
			}
		case <-e.done:
			return
		}
	}
}

// Close detaches every port, stops every listener and waits for all
// goroutines. It is safe to call twice.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	ls := make([]*listenerState, 0, len(e.listeners))
	for l := range e.listeners {
		ls = append(ls, l)
	}
	ps := make([]*Port, 0, len(e.byName))
	for _, p := range e.byName {
		ps = append(ps, p)
	}
	e.mu.Unlock()

	var errs []error
	for _, l := range ls {
		errs = append(errs, l.l.Close())
	}
	// Captures end first: their readers get what was captured, then EOF.
	for _, c := range e.Captures() {
		c.Close()
	}
	for _, p := range ps {
		// By pointer, not name: a port whose peer just hung up may be
		// detaching itself, and then this waits for it instead of failing.
		errs = append(errs, e.detach(p, false))
	}
	e.wg.Wait()
	return errors.Join(errs...)
}
