package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	engine "github.com/zswitch/zswitch/switch"
)

// switchingKeys are options every Ethernet port kind takes: its VLANs and
// port security (engine.PortConfig). VLAN lists join with "+" because
// commas separate options: trunk=100+200+300-310.
var switchingKeys = []string{"vlan", "trunk", "native", "mac-limit", "sticky", "isolated", "storm", "storm-burst", "backpressure"}

// PortConfig returns the engine's config for a parsed Ethernet spec: its
// VLANs, port security and link impairments.
func PortConfig(sp Spec) (engine.PortConfig, error) {
	var c engine.PortConfig
	var errs []error
	o := sp.Options
	if v, ok := o["vlan"]; ok {
		id, err := engine.ParseVLAN(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("option vlan (access VLAN): %w", err))
		}
		c.Access = id
	}
	if v, ok := o["trunk"]; ok {
		set, err := engine.ParseVLANs(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("option trunk: %w; want all or a list like 100+200+300-310", err))
		}
		c.Trunk = &set
	}
	if v, ok := o["native"]; ok {
		if v == "none" {
			c.DropUntagged = true
		} else {
			id, err := engine.ParseVLAN(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("option native: %w, or none to drop untagged frames", err))
			}
			c.Native = id
		}
	}
	if c.Access != 0 && (o["trunk"] != "" || o["native"] != "") {
		errs = append(errs, errors.New("option vlan: an access port takes no trunk= or native="))
	}
	var err error
	if c.MACLimit, err = intOption(sp, "mac-limit", 0, 1, 1<<20); err != nil {
		errs = append(errs, err)
	}
	if c.StormPPS, err = intOption(sp, "storm", 0, 1, 100_000_000); err != nil {
		errs = append(errs, fmt.Errorf("%w (broadcast+multicast frames per second)", err))
	}
	if c.StormBurst, err = intOption(sp, "storm-burst", 0, 1, 100_000_000); err != nil {
		errs = append(errs, err)
	}
	if c.StormBurst > 0 && c.StormPPS == 0 {
		errs = append(errs, errors.New("option storm-burst: needs storm=RATE"))
	}
	if c.Backpressure, err = backpressureOption(sp); err != nil {
		errs = append(errs, err)
	}
	if c.Sticky, err = boolOption(sp, "sticky"); err != nil {
		errs = append(errs, err)
	}
	if c.Isolated, err = boolOption(sp, "isolated"); err != nil {
		errs = append(errs, err)
	}
	if c.Impair.In, c.Impair.Out, err = Impairments(sp); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return c, errors.Join(errs...)
}

// DefaultBackpressure is what backpressure=on waits: long enough for a
// slow peer that still reads, short enough to drop for one that stopped.
const DefaultBackpressure = 100 * time.Millisecond

// backpressureOption reads backpressure=DURATION (how long a sender may
// wait for room in the port's queue), on for DefaultBackpressure, and off,
// false or 0 for none.
func backpressureOption(sp Spec) (time.Duration, error) {
	switch sp.Options["backpressure"] {
	case "", "off", "false", "0":
		return 0, nil
	case "on", "true":
		return DefaultBackpressure, nil
	}
	d, err := durationOption(sp, "backpressure", 0)
	if err == nil && d > engine.MaxBackpressure {
		err = fmt.Errorf("option backpressure: %v is over the limit of %v a sender may wait", d, engine.MaxBackpressure)
	}
	return d, err
}

// boolOption reads true/false (and the usual spellings) or false when absent.
func boolOption(sp Spec, key string) (bool, error) {
	v, ok := sp.Options[key]
	if !ok {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("option %s: %q is not true or false", key, v)
	}
	return b, nil
}

// takesKey reports whether kind k accepts option key.
func (k *kind) takesKey(key string) bool {
	if _, _, _, ok := impairmentKey(key); ok {
		return true
	}
	return slices.Contains(k.keys, key) || (k.segment == "" && slices.Contains(switchingKeys, key))
}

// allKeys lists what kind k accepts, for error messages.
func (k *kind) allKeys() []string {
	keys := append([]string{"name"}, k.keys...)
	if k.segment == "" {
		keys = append(keys, switchingKeys...)
	}
	return append(keys, impairmentKeys()...)
}

// RuntimeKey reports whether option key of sp's kind may change while
// the port runs (zswitch ctl set): its link impairments and, on Ethernet
// ports, its VLANs and port security.
func RuntimeKey(sp Spec, key string) bool {
	k, ok := kinds[sp.Kind]
	if !ok {
		return false
	}
	if _, _, _, imp := impairmentKey(key); imp {
		return true
	}
	return k.segment == "" && slices.Contains(switchingKeys, key)
}

// RuntimeOptions returns sp's options that may change at run time.
func RuntimeOptions(sp Spec) map[string]string {
	out := map[string]string{}
	for k, v := range sp.Options {
		if RuntimeKey(sp, k) {
			out[k] = v
		}
	}
	return out
}

// WithOptions returns sp with run-time option changes applied, checked
// as a whole; an empty value removes the option (back to its default).
func WithOptions(sp Spec, changes map[string]string) (Spec, error) {
	out := sp
	out.Options = maps.Clone(sp.Options)
	for _, key := range slices.Sorted(maps.Keys(changes)) {
		if !RuntimeKey(sp, key) {
			return sp, fmt.Errorf("option %q cannot change while the port runs; remove and add the port to change it", key)
		}
		if v := changes[key]; v == "" {
			delete(out.Options, key)
		} else {
			out.Options[key] = v
		}
	}
	if kinds[sp.Kind].segment == "" {
		if _, err := PortConfig(out); err != nil {
			return sp, err
		}
	}
	if _, _, err := Impairments(out); err != nil {
		return sp, err
	}
	return out, nil
}
