// Package config turns what users type — port specs on the command line and
// the YAML config file — into ports and an engine configuration. It
// validates everything before anything is opened, and its errors name the
// spec or field at fault and what was expected.
package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A Spec is one parsed port spec, KIND:[TRANSPORT:]ADDRESS[,key=value…].
type Spec struct {
	Raw       string // as the user wrote it, for error messages
	Kind      string
	Transport string // "" for kinds with only one transport
	Address   string
	Name      string            // name= or a default derived from kind and address
	Options   map[string]string // every key=value except name
}

// ParseSpec parses and validates one port spec. It opens nothing.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{Raw: s, Options: map[string]string{}}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || kind == "" {
		return sp, fmt.Errorf("port %q: want KIND:[TRANSPORT:]ADDRESS[,key=value…], e.g. stream-listen:unix:/tmp/zswitch.sock", s)
	}
	k, ok := kinds[kind]
	if !ok {
		return sp, fmt.Errorf("port %q: unknown kind %q; kinds: %s", s, kind, strings.Join(KindNames(), ", "))
	}
	sp.Kind = kind
	addr, opts, _ := strings.Cut(rest, ",")
	if len(k.transports) > 0 {
		t, a, ok := strings.Cut(addr, ":")
		if !ok || !slices.Contains(k.transports, t) {
			return sp, fmt.Errorf("port %q: transport: want one of %s after %q, e.g. %s",
				s, strings.Join(k.transports, ", "), kind+":", k.example)
		}
		sp.Transport, addr = t, a
	}
	if addr == "" {
		return sp, fmt.Errorf("port %q: address: missing, e.g. %s", s, k.example)
	}
	sp.Address = addr
	if opts != "" {
		for kv := range strings.SplitSeq(opts, ",") {
			key, val, ok := strings.Cut(kv, "=")
			switch {
			case !ok || key == "":
				return sp, fmt.Errorf("port %q: option %q: want key=value", s, kv)
			case key != "name" && !k.takesKey(key):
				return sp, fmt.Errorf("port %q: option %q: unknown for %s; it takes: %s", s, key, kind, strings.Join(k.allKeys(), ", "))
			case key == "name" && sp.Name != "", sp.Options[key] != "":
				return sp, fmt.Errorf("port %q: option %q: given twice", s, key)
			case val == "":
				return sp, fmt.Errorf("port %q: option %q: empty value", s, key)
			}
			if key == "name" {
				if err := checkName(val); err != nil {
					return sp, fmt.Errorf("port %q: option name: %w", s, err)
				}
				sp.Name = val
				continue
			}
			sp.Options[key] = val
		}
	}
	if sp.Name == "" {
		sp.Name = kind + ":" + addr
	}
	if err := k.check(sp); err != nil {
		return sp, fmt.Errorf("port %q: %w", s, err)
	}
	if k.segment == "" {
		if _, err := PortConfig(sp); err != nil {
			return sp, fmt.Errorf("port %q: %w", s, err)
		}
	}
	if _, _, err := Impairments(sp); err != nil {
		return sp, fmt.Errorf("port %q: %w", s, err)
	}
	return sp, nil
}

// checkName keeps names usable as metrics labels and ctl arguments.
func checkName(n string) error {
	if strings.ContainsAny(n, " \t\n\"'") {
		return fmt.Errorf("%q: must not contain spaces or quotes", n)
	}
	return nil
}

// String is the spec in its canonical form.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(s.Kind)
	b.WriteByte(':')
	if s.Transport != "" {
		b.WriteString(s.Transport)
		b.WriteByte(':')
	}
	b.WriteString(s.Address)
	for _, k := range slices.Sorted(maps.Keys(s.Options)) {
		fmt.Fprintf(&b, ",%s=%s", k, s.Options[k])
	}
	return b.String()
}
