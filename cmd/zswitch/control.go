package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/config"
	"github.com/zswitch/zswitch/control"
	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/medium"
	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

// startControl serves the control API for a run at path ("" serves
// nothing). When the path is the default and another zswitch already
// serves there, the run goes on without it; an explicit --control fails.
// The returned stop is safe to call when nothing is served.
func startControl(fs *flag.FlagSet, path string, e *engine.Engine, ms media, specs []config.Spec, opened []config.Opened, log *slog.Logger) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	cs := newControlSwitch(e, ms, log)
	for i, sp := range specs {
		cs.specs[sp.Name] = &specEntry{sp: sp, o: opened[i], since: time.Now()}
	}
	srv, err := control.Serve(path, 0, control.Handler(cs))
	if err != nil {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "control" })
		if !explicit && errors.Is(err, control.ErrInUse) {
			log.Warn("control API not served", "err", err)
			return func() {}, nil
		}
		return nil, err
	}
	log.Info("control API", "socket", path)
	return func() { srv.Close() }, nil
}

// controlSwitch is the control API's view of a run: the engine, the
// 802.15.4 media and the specs their ports and listeners came from.
type controlSwitch struct {
	e   *engine.Engine
	log *slog.Logger

	mu    sync.Mutex            // serialises adds and removes; guards the fields below
	ms    media                 // runtime adds may create a medium
	specs map[string]*specEntry // ports and listeners opened from specs, by name
	// live holds, per port, its spec with the run-time options changed by
	// SetOptions applied; a port without changes is not in it.
	live map[string]config.Spec

	capMu    sync.Mutex               // guards wpanCaps
	wpanCaps map[*wpanStream]struct{} // running captures of 802.15.4 media
}

type specEntry struct {
	sp    config.Spec
	o     config.Opened
	since time.Time
}

func newControlSwitch(e *engine.Engine, ms media, log *slog.Logger) *controlSwitch {
	return &controlSwitch{e: e, ms: ms, log: log, specs: map[string]*specEntry{}, live: map[string]config.Spec{}, wpanCaps: map[*wpanStream]struct{}{}}
}

var _ control.Switch = (*controlSwitch)(nil)

const segmentEthernet = "ethernet"

func segmentOf(sp config.Spec) string {
	if s := config.Segment(sp); s != "" {
		return s
	}
	return segmentEthernet
}

// Ports lists listeners, ports and medium nodes, each connection right
// after its listener.
func (c *controlSwitch) Ports() []control.PortInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []control.PortInfo
	for name := range c.live { // ports that left keep no options
		_, onEngine := c.e.Port(name)
		if _, onMedium := c.ms.node(name); !onEngine && !onMedium {
			delete(c.live, name)
		}
	}
	for _, p := range c.e.Ports() {
		pi := control.PortInfo{Name: p.Name, Kind: p.Kind, Segment: segmentEthernet, Since: p.Since}
		if se, ok := c.specs[p.Name]; ok {
			pi.Spec = se.sp.String()
		}
		fillCounters(&pi, p.Stats())
		pi.QueueDepth, pi.QueueHigh = p.Queue()
		pi.TxDirect = p.DirectWrites()
		pi.MACs, pi.MACMoves = c.e.FDB().PortCount(p.ID), p.Stats().MACMoves.Load()
		pi.Config = p.Config().String()
		if sp, ok := c.liveSpecLocked(p.Name); ok {
			if o := config.RuntimeOptions(sp); len(o) > 0 {
				pi.Options = o
			}
		}
		out = append(out, pi)
	}
	accepted := map[string]uint64{}
	for _, l := range c.e.Listeners() {
		accepted[l.Name] = l.Accepted
	}
	for name, se := range c.specs {
		if se.o.Listener == nil {
			continue
		}
		out = append(out, control.PortInfo{
			Name: name, Kind: se.sp.Kind, Segment: segmentOf(se.sp), Spec: se.sp.String(), Since: se.since,
			Listener: true, Addr: se.o.Listener.Addr(), Accepted: accepted[name],
		})
	}
	for _, m := range c.ms {
		for _, n := range m.Nodes() {
			pi := control.PortInfo{Name: n.Name, Segment: config.SegmentWPAN, Since: n.Since}
			if se := c.specOfLocked(n.Name); se != nil {
				pi.Kind = se.sp.Kind
				if se.sp.Name == n.Name {
					pi.Spec = se.sp.String()
				}
			}
			fillCounters(&pi, n.Stats())
			pi.QueueDepth, pi.QueueHigh = n.Queue()
			if in, out := n.Impairment(); !in.IsZero() || !out.IsZero() {
				pi.Config = impairmentSummary(in, out)
			}
			if sp, ok := c.liveSpecLocked(n.Name); ok {
				if o := config.RuntimeOptions(sp); len(o) > 0 {
					pi.Options = o
				}
			}
			out = append(out, pi)
		}
	}
	slices.SortFunc(out, func(a, b control.PortInfo) int {
		ap, an := splitConn(a.Name)
		bp, bn := splitConn(b.Name)
		return cmp.Or(strings.Compare(ap, bp), cmp.Compare(an, bn), strings.Compare(a.Name, b.Name))
	})
	return out
}

// splitConn splits an accepted connection's name NAME/N into NAME and N;
// any other name is itself and 0.
func splitConn(name string) (string, int) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return name, 0
	}
	n, err := strconv.Atoi(name[i+1:])
	if err != nil || n <= 0 {
		return name, 0
	}
	return name[:i], n
}

// liveSpecLocked is the spec a port runs with: the one it came from, with
// the options changed at run time.
func (c *controlSwitch) liveSpecLocked(name string) (config.Spec, bool) {
	if sp, ok := c.live[name]; ok {
		return sp, true
	}
	if se := c.specOfLocked(name); se != nil {
		return se.sp, true
	}
	return config.Spec{}, false
}

// SetOptions changes a port's run-time options: the spec keys that may
// change while it runs.
func (c *controlSwitch) SetOptions(name string, opts map[string]string) (control.PortInfo, error) {
	c.mu.Lock()
	_, ok := c.e.Port(name)
	m, onMedium := c.ms.node(name)
	sp, known := c.liveSpecLocked(name)
	if !(ok || onMedium) || !known {
		c.mu.Unlock()
		if _, isListener := c.specs[name]; isListener {
			return control.PortInfo{}, control.Invalid("%s is a listener; set options on one of its connections (%s/1, …)", name, name)
		}
		return control.PortInfo{}, noPort(name)
	}
	next, err := config.WithOptions(sp, opts)
	switch {
	case err != nil:
	case onMedium:
		var in, out impair.Config
		if in, out, err = config.Impairments(next); err == nil {
			err = m.SetImpairment(name, in, out)
		}
	default:
		var pc engine.PortConfig
		if pc, err = config.PortConfig(next); err == nil {
			err = c.e.SetPortConfig(name, pc)
		}
	}
	if err != nil {
		c.mu.Unlock()
		return control.PortInfo{}, control.Invalid("port %s: %v", name, err)
	}
	c.live[name] = next
	c.mu.Unlock()
	c.log.Info("port options changed", "port", name, "options", opts)
	return c.Port(name)
}

// specOfLocked finds the spec a port came from: its own, or its listener's.
func (c *controlSwitch) specOfLocked(name string) *specEntry {
	if se, ok := c.specs[name]; ok {
		return se
	}
	if l, n := splitConn(name); n > 0 {
		if se, ok := c.specs[l]; ok && se.o.Listener != nil {
			return se
		}
	}
	return nil
}

func fillCounters(pi *control.PortInfo, s *ports.Stats) {
	pi.LinkUp = s.LinkUp.Load()
	pi.RxFrames, pi.RxBytes = s.RxFrames.Load(), s.RxBytes.Load()
	pi.TxFrames, pi.TxBytes = s.TxFrames.Load(), s.TxBytes.Load()
	pi.Forwarded, pi.Flooded = s.Forwarded.Load(), s.Flooded.Load()
	pi.RxInvalid, pi.LearnRefused, pi.Errors = s.RxInvalid.Load(), s.LearnRefused.Load(), s.Errors.Load()
	pi.Connects, pi.Disconnects = s.Connects.Load(), s.Disconnects.Load()
	for r := range ports.NumDropReasons {
		if n := s.IngressDrops[r].Load(); n > 0 {
			if pi.DropsIn == nil {
				pi.DropsIn = map[string]uint64{}
			}
			pi.DropsIn[r.String()] = n
			pi.Drops += n
		}
		if n := s.EgressDrops[r].Load(); n > 0 {
			if pi.DropsOut == nil {
				pi.DropsOut = map[string]uint64{}
			}
			pi.DropsOut[r.String()] = n
			pi.Drops += n
		}
	}
}

func (c *controlSwitch) Port(name string) (control.PortInfo, error) {
	for _, p := range c.Ports() {
		if p.Name == name {
			return p, nil
		}
	}
	return control.PortInfo{}, noPort(name)
}

func noPort(name string) error {
	return control.NotFound("no port %q; zswitch ctl ports lists them", name)
}

// inUseLocked reports what already uses sp's name or address.
func (c *controlSwitch) inUseLocked(sp config.Spec) error {
	if se, ok := c.specs[sp.Name]; ok && !c.attachedLocked(se) {
		delete(c.specs, sp.Name) // its port went away by itself (a failed dial)
	}
	taken := false
	if _, ok := c.specs[sp.Name]; ok {
		taken = true
	} else if _, ok := c.e.Port(sp.Name); ok {
		taken = true
	} else {
		for _, m := range c.ms {
			if _, ok := m.Node(sp.Name); ok {
				taken = true
			}
		}
	}
	if taken {
		return control.Conflict("port %q: name %q is already used; add name=… to choose another", sp.Raw, sp.Name)
	}
	for name, se := range c.specs {
		if se.sp.Transport == sp.Transport && se.sp.Address == sp.Address {
			return control.Conflict("port %q: address %s is already used by port %s", sp.Raw, sp.Address, name)
		}
	}
	return nil
}

// attachedLocked reports whether a spec's port or listener is still there.
func (c *controlSwitch) attachedLocked(se *specEntry) bool {
	if se.o.Listener != nil {
		return true // listeners leave only through RemovePort
	}
	if segmentOf(se.sp) == config.SegmentWPAN {
		if m := c.ms[config.MediumName(se.sp)]; m != nil {
			_, ok := m.Node(se.sp.Name)
			return ok
		}
		return false
	}
	_, ok := c.e.Port(se.sp.Name)
	return ok
}

func (c *controlSwitch) AddPort(spec string) (control.PortInfo, error) {
	sp, err := config.ParseSpec(spec)
	if err != nil {
		return control.PortInfo{}, control.Invalid("%v", err)
	}
	c.mu.Lock()
	if err := c.inUseLocked(sp); err != nil {
		c.mu.Unlock()
		return control.PortInfo{}, err
	}
	o, err := config.Open(sp, config.Env{Logger: c.log})
	if err != nil {
		c.mu.Unlock()
		if errors.Is(err, syscall.EADDRINUSE) {
			return control.PortInfo{}, control.Conflict("%v", err)
		}
		return control.PortInfo{}, err
	}
	if config.Segment(sp) == config.SegmentWPAN {
		name := config.MediumName(sp)
		if c.ms[name] == nil {
			c.ms[name] = &runMedium{Medium: medium.New(medium.Config{Logger: c.log.With("medium", name)})}
		}
	}
	err = attachOpened(c.e, c.ms, sp, o)
	if err == nil {
		c.specs[sp.Name] = &specEntry{sp: sp, o: o, since: time.Now()}
	}
	c.mu.Unlock()
	if err != nil {
		return control.PortInfo{}, err
	}
	c.log.Info("port added", "port", sp.Name, "spec", sp.String())
	pi, err := c.Port(sp.Name)
	if err != nil {
		// A connectionless port can already be gone again, e.g. a dial that failed.
		pi = control.PortInfo{Name: sp.Name, Kind: sp.Kind, Segment: segmentOf(sp), Spec: sp.String()}
	}
	pi.QEMU = config.QEMUFlags(sp, o)
	pi.Hints = config.Hints(sp, o)
	return pi, nil
}

// RemovePort detaches a port or node, or closes a listener and detaches
// the connections it accepted.
func (c *controlSwitch) RemovePort(name string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	se := c.specs[name]
	delete(c.specs, name)
	if se != nil && se.o.Listener != nil {
		var err error
		m := c.ms[config.MediumName(se.sp)]
		wpan := segmentOf(se.sp) == config.SegmentWPAN
		if wpan {
			err = m.DetachListener(name)
		} else {
			err = c.e.DetachListener(name)
		}
		removed := []string{name}
		var errs []error
		if err != nil {
			errs = append(errs, err)
		}
		var conns []string
		if wpan {
			for _, n := range m.Nodes() {
				conns = append(conns, n.Name)
			}
		} else {
			for _, p := range c.e.Ports() {
				conns = append(conns, p.Name)
			}
		}
		for _, n := range conns {
			if l, i := splitConn(n); i > 0 && l == name {
				if wpan {
					err = m.Detach(n)
				} else {
					err = c.e.Detach(n)
				}
				if err != nil {
					errs = append(errs, err)
				}
				removed = append(removed, n)
			}
		}
		c.log.Info("port removed", "port", name, "connections", len(removed)-1)
		return removed, errors.Join(errs...)
	}
	if _, ok := c.e.Port(name); ok {
		c.log.Info("port removed", "port", name)
		return []string{name}, c.e.Detach(name)
	}
	for _, m := range c.ms {
		if _, ok := m.Node(name); ok {
			c.log.Info("port removed", "port", name)
			return []string{name}, m.Detach(name)
		}
	}
	return nil, noPort(name)
}

func (c *controlSwitch) FDB() ([]control.FDBEntry, error) {
	names := map[uint16]string{}
	for _, p := range c.e.Ports() {
		names[p.ID] = p.Name
	}
	now := c.e.Config().Now()
	es := c.e.FDB().Entries()
	out := make([]control.FDBEntry, 0, len(es))
	for _, e := range es {
		fe := control.FDBEntry{MAC: e.Key.MAC, VLAN: e.Key.VLAN, Static: e.Static, Sticky: e.Sticky, Port: names[e.Port]}
		if fe.Port == "" {
			fe.Port = "#" + strconv.Itoa(int(e.Port)) // detached a moment ago
		}
		if !e.Static || e.Sticky {
			fe.Age = max(0, now.Sub(e.Seen).Round(time.Millisecond).Seconds())
		}
		out = append(out, fe)
	}
	slices.SortFunc(out, func(a, b control.FDBEntry) int {
		return cmp.Or(strings.Compare(a.Port, b.Port), cmp.Compare(a.VLAN, b.VLAN), strings.Compare(a.MAC.String(), b.MAC.String()))
	})
	return out, nil
}

// ethernetPort finds an attached Ethernet port by name, or says why the
// name has no MAC table entries.
func (c *controlSwitch) ethernetPort(name string) (*engine.Port, error) {
	if p, ok := c.e.Port(name); ok {
		return p, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	se := c.specOfLocked(name)
	switch {
	case se != nil && segmentOf(se.sp) == config.SegmentWPAN:
		return nil, control.Invalid("port %s is on an 802.15.4 medium, which has no MAC table", name)
	case se != nil && se.sp.Name == name && se.o.Listener != nil:
		return nil, control.Invalid("%s is a listener; use one of its connections (%s/1, …), see zswitch ctl ports", name, name)
	}
	return nil, noPort(name)
}

func (c *controlSwitch) AddStatic(mac fdb.MAC, vlan uint16, port string) error {
	p, err := c.ethernetPort(port)
	if err != nil {
		return err
	}
	if vlan == 0 { // unset: the VLAN of the port's untagged frames
		vlan = max(p.Config().PVID(), 1)
	}
	if vlan > engine.MaxVLAN {
		return control.Invalid("vlan %d: want 1..%d", vlan, engine.MaxVLAN)
	}
	c.e.FDB().AddStatic(fdb.Key{MAC: mac, VLAN: vlan}, p.ID)
	c.log.Info("static MAC added", "mac", mac, "vlan", vlan, "port", port)
	return nil
}

func (c *controlSwitch) DeleteFDB(mac fdb.MAC, vlan int) (int, error) {
	t := c.e.FDB()
	if vlan >= 0 {
		if t.Delete(fdb.Key{MAC: mac, VLAN: uint16(vlan)}) {
			return 1, nil
		}
		return 0, nil
	}
	n := 0
	for _, e := range t.Entries() {
		if e.Key.MAC == mac && t.Delete(e.Key) {
			n++
		}
	}
	return n, nil
}

func (c *controlSwitch) FlushFDB(port string, withStatic bool) (int, error) {
	t := c.e.FDB()
	if port != "" {
		p, err := c.ethernetPort(port)
		if err != nil {
			return 0, err
		}
		return t.FlushPort(p.ID, withStatic), nil
	}
	if !withStatic {
		return t.Flush(), nil
	}
	n := 0
	for _, e := range t.Entries() {
		if t.Delete(e.Key) {
			n++
		}
	}
	return n, nil
}

// Capture starts a capture of an Ethernet port, a listener's connections
// or "all" (every Ethernet port) on the engine; or, on an 802.15.4 medium,
// of a node, a wpan listener's nodes or, by the medium's name, every node
// of the medium (link type 230, PSDUs without FCS). "all" covers the
// Ethernet ports only: capture a medium by its name.
func (c *controlSwitch) Capture(port string) (control.CaptureStream, error) {
	if port != "all" {
		if m, node := c.mediumOf(port); m != nil {
			rc, err := m.CaptureRecords(node, 0)
			if errors.Is(err, medium.ErrNoNode) {
				return nil, noPort(port)
			}
			if err != nil {
				return nil, err
			}
			s := &wpanStream{c: rc, sw: c, port: port, id: c.e.NewCaptureID(), kinds: map[string]string{}}
			c.capMu.Lock()
			c.wpanCaps[s] = struct{}{}
			c.capMu.Unlock()
			c.log.Info("capture started", "id", s.id, "port", port, "segment", config.SegmentWPAN)
			return s, nil
		}
	}
	cp, err := c.e.Capture(engine.CaptureSelect{Port: port})
	if errors.Is(err, engine.ErrNoPort) {
		return nil, noPort(port)
	}
	if err != nil {
		return nil, err
	}
	c.log.Info("capture started", "id", cp.ID, "port", cp.Selection())
	return &captureStream{c: cp, log: c.log}, nil
}

// mediumOf finds the 802.15.4 medium of a node or wpan listener, and the
// name to capture on it; or, when name is a medium's and no port's, that
// medium and "all". It returns nil for anything else.
func (c *controlSwitch) mediumOf(name string) (*runMedium, string) {
	if _, ok := c.e.Port(name); ok {
		return nil, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if se := c.specOfLocked(name); se != nil {
		if segmentOf(se.sp) == config.SegmentWPAN && c.ms[config.MediumName(se.sp)] != nil {
			return c.ms[config.MediumName(se.sp)], name
		}
		return nil, ""
	}
	for _, m := range c.ms {
		if _, ok := m.Node(name); ok {
			return m, name
		}
	}
	if m := c.ms[name]; m != nil {
		return m, "all"
	}
	return nil, ""
}

// kindOf is the kind of a wpan node: its spec's, or its listener's.
func (c *controlSwitch) kindOf(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if se := c.specOfLocked(name); se != nil {
		return se.sp.Kind
	}
	return "wpan"
}

func (c *controlSwitch) Captures() []control.CaptureInfo {
	var out []control.CaptureInfo
	for _, cp := range c.e.Captures() {
		out = append(out, captureInfo(cp))
	}
	c.capMu.Lock()
	for s := range c.wpanCaps {
		out = append(out, s.Info())
	}
	c.capMu.Unlock()
	slices.SortFunc(out, func(a, b control.CaptureInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// wpanStream serves an 802.15.4 medium's record capture to the control
// API.
type wpanStream struct {
	c     *medium.RecCapture
	sw    *controlSwitch
	port  string // what was asked for: a node, a wpan listener or a medium
	id    uint64
	recs  []medium.Record
	kinds map[string]string // node kinds seen, read by Read's goroutine only
}

func (s *wpanStream) Info() control.CaptureInfo {
	st := s.c.Stats()
	return control.CaptureInfo{ID: s.id, Port: s.port, Since: s.c.Since, Frames: st.Frames, Bytes: st.Bytes, Drops: st.Drops}
}

func (s *wpanStream) Interfaces() []control.CaptureInterface {
	var out []control.CaptureInterface
	for _, n := range s.c.Nodes() {
		out = append(out, control.CaptureInterface{Name: n.Name, Kind: s.sw.kindOf(n.Name), LinkType: control.LinkTypeIEEE802154NoFCS})
	}
	return out
}

func (s *wpanStream) Read(ctx context.Context, dst []control.Packet) (int, error) {
	if len(s.recs) < len(dst) {
		s.recs = make([]medium.Record, len(dst))
	}
	n, err := s.c.Read(ctx, s.recs[:len(dst)])
	for i, r := range s.recs[:n] {
		kind, ok := s.kinds[r.Node]
		if !ok {
			kind = s.sw.kindOf(r.Node)
			s.kinds[r.Node] = kind
		}
		dst[i] = control.Packet{
			CaptureInterface: control.CaptureInterface{Name: r.Node, Kind: kind, LinkType: control.LinkTypeIEEE802154NoFCS},
			Time:             r.Time, Dir: int(r.Dir), Length: r.Length, Data: r.Data,
		}
	}
	return n, err
}

func (s *wpanStream) Close() error {
	s.sw.capMu.Lock()
	_, running := s.sw.wpanCaps[s]
	delete(s.sw.wpanCaps, s)
	s.sw.capMu.Unlock()
	if running {
		st := s.c.Stats()
		s.sw.log.Info("capture stopped", "id", s.id, "port", s.port, "frames", st.Frames, "drops", st.Drops)
	}
	return s.c.Close()
}

func captureInfo(cp *engine.Capture) control.CaptureInfo {
	s := cp.Stats()
	return control.CaptureInfo{ID: cp.ID, Port: cp.Selection(), Since: cp.Since, Frames: s.Frames, Bytes: s.Bytes, Drops: s.Drops}
}

// captureStream serves an engine capture to the control API.
type captureStream struct {
	c    *engine.Capture
	log  *slog.Logger
	recs []engine.CaptureRecord
}

func (s *captureStream) Info() control.CaptureInfo { return captureInfo(s.c) }

func (s *captureStream) Interfaces() []control.CaptureInterface {
	var out []control.CaptureInterface
	for _, p := range s.c.Ports() {
		out = append(out, control.CaptureInterface{Name: p.Name, Kind: p.Kind, LinkType: control.LinkTypeEthernet})
	}
	return out
}

func (s *captureStream) Read(ctx context.Context, dst []control.Packet) (int, error) {
	if len(s.recs) < len(dst) {
		s.recs = make([]engine.CaptureRecord, len(dst))
	}
	n, err := s.c.Read(ctx, s.recs[:len(dst)])
	for i, r := range s.recs[:n] {
		dst[i] = control.Packet{
			CaptureInterface: control.CaptureInterface{Name: r.Port.Name, Kind: r.Port.Kind, LinkType: control.LinkTypeEthernet},
			Time:             r.Time, Dir: int(r.Dir), Length: r.Length, Data: r.Data,
		}
	}
	return n, err
}

func (s *captureStream) Close() error {
	st := s.c.Stats()
	s.log.Info("capture stopped", "id", s.c.ID, "port", s.c.Selection(), "frames", st.Frames, "drops", st.Drops)
	return s.c.Close()
}

// impairmentSummary is a wpan node's impairments as ctl shows them, in
// the words of an Ethernet port's config summary.
func impairmentSummary(in, out impair.Config) string {
	var parts []string
	if !in.IsZero() {
		parts = append(parts, "in: "+in.String())
	}
	if !out.IsZero() {
		parts = append(parts, "out: "+out.String())
	}
	return strings.Join(parts, ", ")
}
