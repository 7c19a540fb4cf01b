package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/zswitch/zswitch/config"
	"github.com/zswitch/zswitch/impair"
	"github.com/zswitch/zswitch/medium"
)

// media are the 802.15.4 radio media of a run, by name. They are separate
// segments: nothing crosses between them and the Ethernet switch.
type media map[string]*runMedium

type runMedium struct {
	*medium.Medium
	stopCapture func() error // nil without a pcap file
	pcap        *os.File
}

// newMedia creates every medium the config's wpan ports use, with its link
// matrix read now so that a bad file fails the start.
func newMedia(cfg *config.Config, log *slog.Logger) (media, error) {
	ms := media{}
	for name, mc := range cfg.Media {
		var nodes []string
		for _, sp := range cfg.Ports {
			if config.Segment(sp) == config.SegmentWPAN && config.MediumName(sp) == name {
				nodes = append(nodes, sp.Name)
			}
		}
		mcfg := medium.Config{QueueLen: mc.QueueLen, Seed: mc.Seed, Logger: log.With("medium", name)}
		if mc.Links != "" {
			f, err := os.Open(mc.Links)
			if err != nil {
				ms.Close()
				return nil, fmt.Errorf("media.%s.links: %w", name, err)
			}
			mcfg.Links, err = medium.ReadCSV(f, nodes)
			f.Close()
			if err != nil {
				ms.Close()
				return nil, fmt.Errorf("media.%s.links: %s: %w", name, mc.Links, err)
			}
		}
		rm := &runMedium{Medium: medium.New(mcfg)}
		ms[name] = rm
		if mc.Pcap != "" {
			f, err := os.Create(mc.Pcap)
			if err == nil {
				rm.pcap = f
				rm.stopCapture, err = rm.Capture(f)
			}
			if err != nil {
				ms.Close()
				return nil, fmt.Errorf("media.%s.pcap: %w", name, err)
			}
			log.Info("capturing 802.15.4 medium", "medium", name, "pcap", mc.Pcap)
		}
	}
	return ms, nil
}

// attach adds an opened wpan spec to its medium.
func (ms media) attach(sp config.Spec, o config.Opened) error {
	m := ms[config.MediumName(sp)]
	in, out, err := config.Impairments(sp)
	if err != nil {
		o.Close()
		return err
	}
	imp := impair.Link{In: in, Out: out}
	if o.Listener != nil {
		return m.AttachListenerWith(sp.Name, o.Listener, imp)
	}
	_, err = m.AttachWith(sp.Name, o.Port, imp)
	return err
}

// node finds a wpan node by name on any medium.
func (ms media) node(name string) (*runMedium, bool) {
	for _, m := range ms {
		if _, ok := m.Node(name); ok {
			return m, true
		}
	}
	return nil, false
}

func (ms media) Close() error {
	var errs []error
	for _, m := range ms {
		errs = append(errs, m.Medium.Close())
		if m.stopCapture != nil {
			errs = append(errs, m.stopCapture(), m.pcap.Close())
		}
	}
	return errors.Join(errs...)
}
