package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zswitch/zswitch/impair"
)

// Link impairments are options of every port kind, 802.15.4 ones too:
// each key of package impair (delay=50ms, loss=1%, rate=1mbit, …) sets
// both directions; "in." or "out." before the key sets one, and wins over
// the bare key: in.loss=5%,out.delay=20ms. "in" is what the port
// receives from its peer, "out" what the switch sends it.

// impairmentKey reports whether key is an impairment option, and which
// directions it sets.
func impairmentKey(key string) (base string, in, out, ok bool) {
	switch {
	case strings.HasPrefix(key, "in."):
		base, in = key[3:], true
	case strings.HasPrefix(key, "out."):
		base, out = key[4:], true
	default:
		base, in, out = key, true, true
	}
	return base, in, out, impair.IsKey(base)
}

// impairmentKeys lists the impairment options, for error messages.
func impairmentKeys() []string {
	keys := impair.Keys()
	return append(keys, "in.KEY", "out.KEY")
}

// Impairments returns a spec's link impairments, per direction, checked.
func Impairments(sp Spec) (in, out impair.Config, err error) {
	var errs []error
	// Bare keys first, so in./out. override them; sorted, so errors come
	// in the same order every time.
	keys := slices.Sorted(maps.Keys(sp.Options))
	for _, pass := range []bool{false, true} {
		for _, key := range keys {
			base, toIn, toOut, ok := impairmentKey(key)
			if !ok || (key != base) != pass {
				continue
			}
			v := sp.Options[key]
			for _, d := range []struct {
				set bool
				c   *impair.Config
			}{{toIn, &in}, {toOut, &out}} {
				if !d.set {
					continue
				}
				if err := d.c.Set(base, v); err != nil {
					msg := strings.TrimPrefix(err.Error(), "impair: "+base+": ")
					errs = append(errs, fmt.Errorf("option %s: %s", key, msg))
					break
				}
			}
		}
	}
	if len(errs) > 0 {
		return in, out, errors.Join(errs...)
	}
	errIn, errOut := in.Validate(), out.Validate()
	switch {
	case errIn != nil && in == out: // bare keys: one error for both
		return in, out, fmt.Errorf("impairment: %w", unprefixed(errIn))
	case errIn != nil:
		errs = append(errs, fmt.Errorf("impairment in: %w", unprefixed(errIn)))
	}
	if errOut != nil {
		errs = append(errs, fmt.Errorf("impairment out: %w", unprefixed(errOut)))
	}
	return in, out, errors.Join(errs...)
}

// unprefixed drops impair's own "impair: " from an error, which the
// option name replaces.
func unprefixed(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "impair: "))
}
