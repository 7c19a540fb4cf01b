package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/impair"
)

// PortConfig is a port's switching policy: its VLANs and its port
// security. The zero value is what a plain learning bridge does: a
// VLAN-transparent trunk, untagged frames in VLAN 1 and every tagged VLAN
// carried with its tag unchanged.
type PortConfig struct {
	// Access makes the port an access port of that VLAN (1..4094): frames
	// enter untagged (or tagged with this VLAN) and leave untagged.
	Access uint16 `json:"access,omitempty"`
	// Trunk lists the VLANs a trunk carries tagged; nil carries all.
	Trunk *VLANSet `json:"trunk,omitempty"`
	// Native is the trunk's untagged VLAN (default 1). DropUntagged makes a
	// trunk with no native VLAN: untagged frames are dropped.
	Native       uint16 `json:"native,omitempty"`
	DropUntagged bool   `json:"drop_untagged,omitempty"`

	// MACLimit caps the source MACs learned on the port; frames from
	// further new MACs are dropped (mac_limit). 0: no limit of its own.
	MACLimit int `json:"mac_limit,omitempty"`
	// Sticky turns learned MACs into static bindings: they never age or
	// move, and frames from them on another port are dropped (mac_violation).
	Sticky bool `json:"sticky,omitempty"`
	// Isolated ports talk only to ports that are not isolated.
	Isolated bool `json:"isolated,omitempty"`
	// StormPPS limits broadcast and multicast frames entering the port, in
	// frames per second, with bursts of StormBurst (default StormPPS/10,
	// at least one read batch); the excess is dropped (storm). 0: off.
	StormPPS   int `json:"storm_pps,omitempty"`
	StormBurst int `json:"storm_burst,omitempty"`

	// Backpressure makes senders wait, up to this long per batch, for room
	// in the port's egress queue instead of dropping at once (queue_full):
	// a lossless port that slows its senders down to its own pace. 0: off.
	// At most MaxBackpressure, so a port that stops reading cannot stall
	// the others for long.
	Backpressure time.Duration `json:"backpressure,omitempty"`

	// Impair is the port's link impairments (impairment.go); not part of
	// the datapath policy, but applied with it.
	Impair impair.Link `json:"impair,omitzero"`
}

// policy is a PortConfig compiled for the datapath. Ports hold it behind
// an atomic pointer, so a change applies from the next batch on.
type policy struct {
	cfg      PortConfig
	member   VLANSet // VLANs the port carries
	untagged VLANSet // VLANs it sends without a tag: its PVID
	pvid     uint16  // VLAN of untagged frames entering; 0 drops them
	isolated bool

	stormInterval  int64 // ns between broadcast/multicast frames; 0 = off
	stormTolerance int64 // how far ahead of time a burst may run, in ns

	backpressure int64 // ns a sender may wait for room in the queue; 0 = off
}

// Validate checks the fields against each other; errors name the field.
func (c PortConfig) Validate() error {
	var errs []error
	if c.Access > MaxVLAN {
		errs = append(errs, fmt.Errorf("access: VLAN %d out of range 1..%d", c.Access, MaxVLAN))
	}
	if c.Access != 0 && (c.Trunk != nil || c.Native != 0 || c.DropUntagged) {
		errs = append(errs, errors.New("access: an access port takes no trunk, native or drop_untagged"))
	}
	if c.Native > MaxVLAN {
		errs = append(errs, fmt.Errorf("native: VLAN %d out of range 1..%d", c.Native, MaxVLAN))
	}
	if c.Native != 0 && c.DropUntagged {
		errs = append(errs, errors.New("native: a trunk that drops untagged frames has no native VLAN"))
	}
	if c.Trunk != nil && c.Trunk.Len() == 0 && c.DropUntagged {
		errs = append(errs, errors.New("trunk: empty, and untagged frames dropped: the port would carry nothing"))
	}
	if c.MACLimit < 0 || c.MACLimit > fdb.DefaultMaxEntries*16 {
		errs = append(errs, fmt.Errorf("mac_limit: %d out of range", c.MACLimit))
	}
	if c.StormPPS < 0 || c.StormBurst < 0 {
		errs = append(errs, errors.New("storm: rates and bursts are not negative"))
	}
	if c.StormBurst > 0 && c.StormPPS == 0 {
		errs = append(errs, errors.New("storm_burst: set without storm_pps"))
	}
	if c.Backpressure < 0 || c.Backpressure > MaxBackpressure {
		errs = append(errs, fmt.Errorf("backpressure: %v out of range 0..%v", c.Backpressure, MaxBackpressure))
	}
	if err := c.Impair.In.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("impairment in: %w", err))
	}
	if err := c.Impair.Out.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("impairment out: %w", err))
	}
	return errors.Join(errs...)
}

// PVID is the VLAN untagged frames entering the port join (0 if dropped).
func (c PortConfig) PVID() uint16 {
	switch {
	case c.Access != 0:
		return c.Access
	case c.DropUntagged:
		return 0
	case c.Native != 0:
		return c.Native
	}
	return 1
}

func compilePolicy(c PortConfig) (*policy, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &policy{cfg: c, pvid: c.PVID(), isolated: c.Isolated, backpressure: int64(c.Backpressure)}
	switch {
	case c.Access != 0:
		p.member.Add(c.Access)
	case c.Trunk != nil:
		p.member = *c.Trunk
	default:
		p.member = AllVLANs()
	}
	if p.pvid != 0 {
		p.member.Add(p.pvid)
		p.untagged.Add(p.pvid)
	}
	if c.StormPPS > 0 {
		burst := c.StormBurst
		if burst == 0 {
			burst = max(c.StormPPS/10, maxBatch)
		}
		p.stormInterval = max(int64(time.Second)/int64(c.StormPPS), 1)
		p.stormTolerance = int64(burst-1) * p.stormInterval
	}
	return p, nil
}

// fdbPolicy is the part of the config the MAC table enforces.
func (c PortConfig) fdbPolicy() fdb.PortPolicy {
	return fdb.PortPolicy{Limit: c.MACLimit, Sticky: c.Sticky}
}

// Config returns the port's switching policy and impairments.
func (p *Port) Config() PortConfig {
	c := p.policy.Load().cfg
	c.Impair.In, c.Impair.Out = p.Impairment()
	return c
}

// SetPortConfig changes a port's VLANs and security while it forwards.
// Frames already queued to it leave under the new VLAN rules; MACs it
// learned before stay (ctl fdb flush clears them).
func (e *Engine) SetPortConfig(name string, c PortConfig) error {
	pol, err := compilePolicy(c)
	if err != nil {
		return fmt.Errorf("port %s: %w", name, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.byName[name]
	if !ok {
		return fmt.Errorf("port %s: no such port", name)
	}
	if err := e.impairLocked(p, c.Impair); err != nil {
		return err
	}
	p.policy.Store(pol)
	e.fdb.SetPortPolicy(p.ID, c.fdbPolicy())
	e.log.Info("port config changed", "port", name, "config", c.String())
	return nil
}

// String is a short summary for logs and ctl, e.g. "access 100" or
// "trunk 100+200 native 1, mac_limit 4, isolated".
func (c PortConfig) String() string {
	s := "trunk all native 1"
	switch {
	case c.Access != 0:
		s = fmt.Sprintf("access %d", c.Access)
	default:
		t := "all"
		if c.Trunk != nil {
			t = c.Trunk.String()
		}
		n := "native " + fmt.Sprint(c.PVID())
		if c.DropUntagged {
			n = "no native"
		}
		s = "trunk " + t + " " + n
	}
	if c.MACLimit > 0 {
		s += fmt.Sprintf(", mac_limit %d", c.MACLimit)
	}
	if c.Sticky {
		s += ", sticky"
	}
	if c.Isolated {
		s += ", isolated"
	}
	if c.StormPPS > 0 {
		s += fmt.Sprintf(", storm %d/s", c.StormPPS)
	}
	if c.Backpressure > 0 {
		s += fmt.Sprintf(", backpressure %v", c.Backpressure)
	}
	if !c.Impair.In.IsZero() {
		s += ", in: " + c.Impair.In.String()
	}
	if !c.Impair.Out.IsZero() {
		s += ", out: " + c.Impair.Out.String()
	}
	return s
}
