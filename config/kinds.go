package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/zswitch/zswitch/ports"
)

// A kind is one KIND of the port spec grammar: how its spec is checked, how
// its port is opened, and what QEMU flags connect a guest to it.
type kind struct {
	transports []string // allowed TRANSPORTs; empty when a kind has one
	keys       []string // options other than name
	example    string
	summary    string // one line for --help
	check      func(Spec) error
	open       func(Spec, Env) (Opened, error)
	// qemu returns the flags (one alternative per line) a QEMU guest uses
	// to reach the opened port, with netdev id "net0".
	qemu func(Spec, Opened) []string
	// hint says how to use a port that is not for QEMU.
	hint func(Spec, Opened) []string
	// segment is "" for Ethernet kinds, SegmentWPAN for 802.15.4 ones.
	segment string
}

// kinds holds every port kind by name. Each kind's file registers it.
var kinds = map[string]*kind{}

// KindNames lists the port kinds, sorted.
func KindNames() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range kinds {
			if !yield(k) {
				return
			}
		}
	})
}

// KindHelp is "KIND  summary (example)" for each kind, sorted by kind.
func KindHelp() []string {
	var out []string
	for _, n := range KindNames() {
		k := kinds[n]
		out = append(out, fmt.Sprintf("%-15s %s (e.g. %s)", n, k.summary, k.example))
	}
	return out
}

// Env is what opening a port may use.
type Env struct {
	Logger *slog.Logger
}

// Opened is an opened spec: a port, or a listener whose connections each
// become a port.
type Opened struct {
	Port     ports.Port
	Listener ports.Listener
}

// Close closes whichever of the two is set.
func (o Opened) Close() error {
	if o.Listener != nil {
		return o.Listener.Close()
	}
	if o.Port != nil {
		return o.Port.Close()
	}
	return nil
}

// Open opens the port or listener a parsed spec describes.
func Open(sp Spec, env Env) (Opened, error) {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	k, ok := kinds[sp.Kind]
	if !ok {
		return Opened{}, fmt.Errorf("port %q: unknown kind %q", sp.Raw, sp.Kind)
	}
	o, err := k.open(sp, env)
	if err != nil {
		return Opened{}, fmt.Errorf("port %s: %w", sp.Name, err)
	}
	return o, nil
}

// QEMUFlags returns alternative QEMU command-line fragments that attach a
// guest's netdev "net0" to the opened spec.
func QEMUFlags(sp Spec, o Opened) []string {
	if k, ok := kinds[sp.Kind]; ok && k.qemu != nil {
		return k.qemu(sp, o)
	}
	return nil
}

// Hints returns how to use an opened port that is not reached with QEMU
// flags (a TAP, an attached interface).
func Hints(sp Spec, o Opened) []string {
	if k, ok := kinds[sp.Kind]; ok && k.hint != nil {
		return k.hint(sp, o)
	}
	return nil
}

// durationOption reads a positive duration option, or def when absent.
func durationOption(sp Spec, key string, def time.Duration) (time.Duration, error) {
	v, ok := sp.Options[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("option %s: %q is not a positive duration like 500ms or 2s", key, v)
	}
	return d, nil
}

// intOption reads an integer option within [lo, hi], or def when absent.
func intOption(sp Spec, key string, def, lo, hi int) (int, error) {
	v, ok := sp.Options[key]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("option %s: %q is not a whole number from %d to %d", key, v, lo, hi)
	}
	return n, nil
}
