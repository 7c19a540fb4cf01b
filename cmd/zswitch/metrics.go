package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/zswitch/zswitch/config"
	"github.com/zswitch/zswitch/medium"
	"github.com/zswitch/zswitch/metrics"
	engine "github.com/zswitch/zswitch/switch"
)

// startMetrics serves Prometheus metrics on cfg.MetricsAddr, if set. The
// returned stop shuts the server down; it is never nil.
func startMetrics(cfg *config.Config, e *engine.Engine, ms media, log *slog.Logger) (stop func(), err error) {
	if cfg.MetricsAddr == "" {
		return func() {}, nil
	}
	mm := make(map[string]*medium.Medium, len(ms))
	for name, m := range ms {
		mm[name] = m.Medium
	}
	// 802.15.4 nodes are named after their spec, or NAME/N when accepted
	// by a listener.
	kinds := map[string]string{}
	for _, sp := range cfg.Ports {
		if config.Segment(sp) == config.SegmentWPAN {
			kinds[sp.Name] = sp.Kind
		}
	}
	nodeKind := func(node string) string {
		if k, ok := kinds[node]; ok {
			return k
		}
		if i := strings.LastIndexByte(node, '/'); i > 0 {
			return kinds[node[:i]]
		}
		return ""
	}
	c := metrics.NewCollector(e, mm, metrics.BuildInfo{Version: buildVersion(), GoVersion: runtime.Version()},
		metrics.WithNodeKind(nodeKind))
	reg, err := metrics.NewRegistry(c)
	if err != nil {
		return nil, err
	}
	srv, err := metrics.Serve(cfg.MetricsAddr, reg, log)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := srv.Close(); err != nil {
			log.Warn("metrics server", "err", err)
		}
	}, nil
}

// buildVersion is the linker-set version, else the module version go
// install recorded, else "devel".
func buildVersion() string {
	if version != "devel" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
