package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/zswitch/zswitch/fdb"
	"github.com/zswitch/zswitch/frame"
	engine "github.com/zswitch/zswitch/switch"
)

// File is the YAML config file. Unknown keys are errors.
//
//	ports:
//	  - stream-listen:unix:/tmp/zswitch.sock
//	  - dgram:udp:127.0.0.1:5000,remote=127.0.0.1:5001,name=vm2
//	metrics_addr: 127.0.0.1:9100
//	log_level: info
//	switch:
//	  slot_size: 2048
//	  queue_len: 1024
//	  mac_table: {size: 65536, aging: 300s, port_limit: 0, move_limit: 0}
//	  static:
//	    - {mac: "02:00:5e:00:53:01", port: vm2}
type File struct {
	Ports       []string `yaml:"ports"`
	MetricsAddr string   `yaml:"metrics_addr"`
	LogLevel    string   `yaml:"log_level"`
	Switch      Switch   `yaml:"switch"`
	// Media configures 802.15.4 media by name (wpan ports' medium=).
	Media map[string]Medium `yaml:"media"`
}

// Medium configures one 802.15.4 medium.
type Medium struct {
	// Links is a CSV link matrix in net-tools' virtual-hub format: row =
	// sender, column = receiver, cells are delivery probabilities
	// (optionally "0.9/5ms" for added latency). Nodes are the medium's
	// ports in the order given.
	Links string `yaml:"links"`
	// Seed makes the losses repeat run after run.
	Seed uint64 `yaml:"seed"`
	// QueueLen is each node's queue, in frames.
	QueueLen int `yaml:"queue_len"`
	// Pcap, if set, is a file that receives every frame on the medium
	// (link type 230, IEEE 802.15.4 without FCS), as monitor_15_4 wrote.
	Pcap string `yaml:"pcap"`
}

// Switch tunes the engine.
type Switch struct {
	SlotSize int      `yaml:"slot_size"` // largest frame; 2048, up to 9216 for jumbo frames
	QueueLen int      `yaml:"queue_len"` // egress queue per port, in frames
	MACTable MACTable `yaml:"mac_table"`
	Static   []Static `yaml:"static"`
}

// MACTable tunes learning.
type MACTable struct {
	Size      int       `yaml:"size"`       // most entries (default 65536)
	Aging     *Duration `yaml:"aging"`      // default 300s; 0 never ages
	PortLimit int       `yaml:"port_limit"` // most MACs learned per port; 0 = no limit
	// MoveLimit damps MAC flapping: a MAC that moves more than move_limit
	// times within move_window stays on its port for move_hold (frames
	// from it elsewhere drop as move_damped). 0 = off.
	MoveLimit  int       `yaml:"move_limit"`
	MoveWindow *Duration `yaml:"move_window"` // default 1s
	MoveHold   *Duration `yaml:"move_hold"`   // default 10s
}

// Static pins a MAC to a port by name.
type Static struct {
	MAC  string `yaml:"mac"`
	VLAN uint16 `yaml:"vlan"`
	Port string `yaml:"port"`
}

// Duration is a time.Duration written as "300s" or "5m" in YAML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 300s or 5m", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// Load reads and decodes a config file; Config.Validate checks it.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Decode decodes YAML config, rejecting unknown keys.
func Decode(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(err)
	}
	return &f, nil
}

// cleanYAMLError turns "field x not found in type config.File" into words
// about the file, not about Go types.
func cleanYAMLError(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	for i, e := range te.Errors {
		if before, field, ok := strings.Cut(e, "field "); ok {
			if f, _, ok := strings.Cut(field, " not found in type "); ok {
				te.Errors[i] = before + "unknown key " + f
			}
		}
	}
	return errors.New(strings.Join(te.Errors, "; "))
}

// Config is everything `zswitch run` needs, validated.
type Config struct {
	Ports       []Spec
	MetricsAddr string
	LogLevel    slog.Level
	Engine      engine.Config
	Media       map[string]Medium
}

// Validate checks f together with the --port specs given on the command
// line and returns the config to run.
func (f *File) Validate(extraPorts []string) (*Config, error) {
	c := &Config{MetricsAddr: f.MetricsAddr}
	switch strings.ToLower(f.LogLevel) {
	case "", "info":
		c.LogLevel = slog.LevelInfo
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return nil, fmt.Errorf("log_level: %q is not one of debug, info, warn, error", f.LogLevel)
	}
	if c.MetricsAddr != "" {
		if err := checkHostPort(c.MetricsAddr, true); err != nil { // ":9100" serves on every address
			return nil, fmt.Errorf("metrics_addr: %w", err)
		}
	}
	names := map[string]string{}
	for i, raw := range append(append([]string(nil), f.Ports...), extraPorts...) {
		sp, err := ParseSpec(raw)
		if err != nil {
			if i < len(f.Ports) {
				return nil, fmt.Errorf("ports[%d]: %w", i, err)
			}
			return nil, err
		}
		if prev, dup := names[sp.Name]; dup {
			return nil, fmt.Errorf("port %q: name %q is already used by %q; add name=… to one of them", raw, sp.Name, prev)
		}
		names[sp.Name] = raw
		c.Ports = append(c.Ports, sp)
	}

	s := f.Switch
	if s.SlotSize != 0 && (s.SlotSize < 64 || s.SlotSize > frame.MaxSlotSize) {
		return nil, fmt.Errorf("switch.slot_size: %d is outside 64..%d", s.SlotSize, frame.MaxSlotSize)
	}
	if s.QueueLen != 0 && (s.QueueLen < 64 || s.QueueLen > 1<<20) {
		return nil, fmt.Errorf("switch.queue_len: %d is outside 64..1048576 frames", s.QueueLen)
	}
	if s.MACTable.Size < 0 || s.MACTable.Size > 1<<24 {
		return nil, fmt.Errorf("switch.mac_table.size: %d is outside 1..16777216", s.MACTable.Size)
	}
	if s.MACTable.PortLimit < 0 {
		return nil, fmt.Errorf("switch.mac_table.port_limit: %d is negative (0 means no limit)", s.MACTable.PortLimit)
	}
	fc := fdb.Config{MaxEntries: s.MACTable.Size, PortLimit: s.MACTable.PortLimit, MoveLimit: s.MACTable.MoveLimit}
	if s.MACTable.MoveLimit < 0 {
		return nil, fmt.Errorf("switch.mac_table.move_limit: %d is negative (0 turns damping off)", s.MACTable.MoveLimit)
	}
	for _, d := range []struct {
		name string
		v    *Duration
		to   *time.Duration
	}{{"move_window", s.MACTable.MoveWindow, &fc.MoveWindow}, {"move_hold", s.MACTable.MoveHold, &fc.MoveHold}} {
		if d.v == nil {
			continue
		}
		if d.v.Duration < 10*time.Millisecond || d.v.Duration > 24*time.Hour {
			return nil, fmt.Errorf("switch.mac_table.%s: %v is outside 10ms..24h", d.name, d.v.Duration)
		}
		if s.MACTable.MoveLimit == 0 {
			return nil, fmt.Errorf("switch.mac_table.%s: set without move_limit, which turns damping on", d.name)
		}
		*d.to = d.v.Duration
	}
	if a := s.MACTable.Aging; a != nil {
		switch {
		case a.Duration < 0:
			return nil, fmt.Errorf("switch.mac_table.aging: %v is negative (0 means never age)", a.Duration)
		case a.Duration == 0:
			fc.AgingTime = -1
		case a.Duration < time.Second:
			return nil, fmt.Errorf("switch.mac_table.aging: %v is under the 1s sweep interval", a.Duration)
		default:
			fc.AgingTime = a.Duration
		}
	}
	c.Media = map[string]Medium{}
	used := map[string]bool{}
	for _, sp := range c.Ports {
		if Segment(sp) == SegmentWPAN {
			used[MediumName(sp)] = true
		}
	}
	for name, m := range f.Media {
		if !used[name] {
			return nil, fmt.Errorf("media.%s: no wpan port has medium=%s", name, name)
		}
		if m.QueueLen < 0 {
			return nil, fmt.Errorf("media.%s.queue_len: %d is negative", name, m.QueueLen)
		}
		if m.Links != "" {
			if _, err := os.Stat(m.Links); err != nil {
				return nil, fmt.Errorf("media.%s.links: %w", name, err)
			}
		}
		if m.Pcap != "" {
			if err := checkWritableDir(m.Pcap); err != nil {
				return nil, fmt.Errorf("media.%s.pcap: %w", name, err)
			}
		}
		c.Media[name] = m
	}
	for name := range used {
		if _, ok := c.Media[name]; !ok {
			c.Media[name] = Medium{}
		}
	}
	c.Engine = engine.Config{SlotSize: s.SlotSize, QueueLen: s.QueueLen, FDB: fc}
	for i, st := range s.Static {
		mac, err := fdb.ParseMAC(st.MAC)
		if err != nil {
			return nil, fmt.Errorf("switch.static[%d].mac: %w", i, err)
		}
		if mac.IsGroup() {
			return nil, fmt.Errorf("switch.static[%d].mac: %v is a group address; only unicast MACs can be pinned", i, mac)
		}
		if st.VLAN > 4094 {
			return nil, fmt.Errorf("switch.static[%d].vlan: %d is outside 0..4094", i, st.VLAN)
		}
		if st.Port == "" {
			return nil, fmt.Errorf("switch.static[%d].port: missing; the name of a port", i)
		}
		c.Engine.Static = append(c.Engine.Static, engine.StaticEntry{MAC: mac, VLAN: st.VLAN, Port: st.Port})
	}
	return c, nil
}

// checkWritableDir fails early when a file cannot be created at path.
func checkWritableDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
