package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/zswitch/zswitch/config"
	"github.com/zswitch/zswitch/control"
	"github.com/zswitch/zswitch/ports"
	engine "github.com/zswitch/zswitch/switch"
)

//go:embed default.yaml
var defaultConfig []byte

// runSwitch is `zswitch run`. It returns after SIGINT or SIGTERM (or when
// stop is closed, for tests) with every port closed and every socket it
// created removed.
func runSwitch(args []string, stdout, stderr io.Writer, stop <-chan struct{}) error {
	fs := flag.NewFlagSet("zswitch run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		specs       []string
		configPath  = fs.String("config", "", "YAML config `FILE` (ports, switch tuning); --port adds to its ports")
		metricsAddr = fs.String("metrics-addr", "", "serve Prometheus metrics on `ADDR` (host:port); overrides the config's metrics_addr")
		logLevel    = fs.String("log-level", "", "debug, info, warn or error (default info)")
		ratesEvery  = fs.Duration("stats-interval", 0, "log a line of switch-wide rates every `DURATION` (e.g. 10s); 0: never")
		controlPath = fs.String("control", control.DefaultPath(), "serve the control API (zswitch ctl) on the unix socket `PATH`; \"\" disables it")
	)
	fs.Func("port", "attach a port, `SPEC` = KIND:[TRANSPORT:]ADDRESS[,key=value…]; repeatable", func(s string) error {
		specs = append(specs, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: zswitch run [--port SPEC]... [--config FILE] [--metrics-addr ADDR] [--control PATH] [--stats-interval DURATION]\n\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nPort kinds (every kind also takes name=NAME):\n")
		for _, l := range config.KindHelp() {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
		fmt.Fprintf(stderr, "\nEthernet kinds also take VLAN and port-security options: vlan=ID, trunk=100+200, native=ID|none,\n"+
			"mac-limit=N, sticky=true, isolated=true, storm=PPS, storm-burst=N; and backpressure=DURATION\n"+
			"(senders wait up to DURATION, at most 1s, for room in the port's queue instead of dropping).\n"+
			"Every kind takes link impairments, for both directions or prefixed in./out.: delay=50ms, jitter=5ms,\n"+
			"dist=uniform|normal, loss=1%%, loss-burst=N, ge-p/ge-r/ge-bad/ge-good, duplicate=1%%, reorder=5%%,\n"+
			"corrupt=0.1%%, corrupt-from=BYTES, rate=1mbit, burst=32kb, limit=FRAMES, seed=N.\n")
		fmt.Fprintf(stderr, "\nWith neither --port nor --config, zswitch runs its embedded default:\n%s", defaultConfig)
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if *ratesEvery < 0 {
		return usageError{fmt.Errorf("run: --stats-interval %v is negative", *ratesEvery)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("run: unexpected argument %q (ports are given with --port)", fs.Arg(0))}
	}

	file := &config.File{}
	switch {
	case *configPath != "":
		f, err := config.Load(*configPath)
		if err != nil {
			return usageError{err}
		}
		file = f
	case len(specs) == 0:
		f, err := config.Decode(defaultConfig)
		if err != nil {
			return fmt.Errorf("embedded default config: %w", err)
		}
		file = f
	}
	if *metricsAddr != "" {
		file.MetricsAddr = *metricsAddr
	}
	if *logLevel != "" {
		file.LogLevel = *logLevel
	}
	cfg, err := file.Validate(specs)
	if err != nil {
		if *configPath != "" {
			err = fmt.Errorf("%s: %w", *configPath, err)
		}
		return usageError{err}
	}
	if len(cfg.Ports) == 0 {
		return usageError{fmt.Errorf("no ports: give --port SPEC or a config with ports")}
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cfg.Engine.Logger = log
	e, err := engine.New(cfg.Engine)
	if err != nil {
		return err
	}
	// Signals are caught before the first socket exists, so an early
	// Ctrl-C still removes it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	ms, err := newMedia(cfg, log)
	if err != nil {
		e.Close()
		return usageError{err}
	}
	started := false // until then, a failure closes what was opened
	defer func() {
		if !started {
			ms.Close()
			e.Close()
		}
	}()
	opened := make([]config.Opened, len(cfg.Ports))
	for i, sp := range cfg.Ports {
		o, err := config.Open(sp, config.Env{Logger: log})
		if err == nil {
			err = attachOpened(e, ms, sp, o)
		}
		if err != nil {
			return err
		}
		opened[i] = o
	}
	stopMetrics, err := startMetrics(cfg, e, ms, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	stopControl, err := startControl(fs, *controlPath, e, ms, cfg.Ports, opened, log)
	if err != nil {
		return err
	}
	started = true
	printQEMUFlags(stdout, cfg.Ports, opened)
	if *ratesEvery > 0 {
		stopRates := make(chan struct{})
		defer close(stopRates)
		go logRates(log, e, *ratesEvery, stopRates)
	}
	log.Info("zswitch running", "ports", len(cfg.Ports))

	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case <-stop:
	}
	stopControl()
	attached := e.Ports()
	err = errors.Join(e.Close(), ms.Close())
	logTotals(log, attached)
	return err
}

// logTotals logs each port's final counters once it is closed, so a run
// ends with an account of every frame.
func logTotals(log *slog.Logger, ps []*engine.Port) {
	for _, p := range ps {
		s := p.Stats()
		attrs := []any{"port", p.Name,
			"rx_frames", s.RxFrames.Load(), "rx_bytes", s.RxBytes.Load(),
			"tx_frames", s.TxFrames.Load(), "tx_bytes", s.TxBytes.Load(),
			"forwarded", s.Forwarded.Load(), "flooded", s.Flooded.Load(), "rx_invalid", s.RxInvalid.Load()}
		for r := range ports.NumDropReasons {
			if n := s.IngressDrops[r].Load(); n > 0 {
				attrs = append(attrs, "drop_in_"+r.String(), n)
			}
			if n := s.EgressDrops[r].Load(); n > 0 {
				attrs = append(attrs, "drop_out_"+r.String(), n)
			}
		}
		log.Info("port totals", attrs...)
	}
}

// printQEMUFlags tells the user how to connect a guest to each port: the
// main reason people read zswitch's output.
func printQEMUFlags(w io.Writer, specs []config.Spec, opened []config.Opened) {
	fmt.Fprintln(w, "zswitch is running.")
	guests := false
	for i, sp := range specs {
		if hints := config.Hints(sp, opened[i]); len(hints) > 0 {
			fmt.Fprintf(w, "\n  port %s (%s):\n", sp.Name, sp)
			for _, h := range hints {
				fmt.Fprintf(w, "    %s\n", h)
			}
		}
		flags := config.QEMUFlags(sp, opened[i])
		if len(flags) == 0 {
			continue
		}
		guests = true
		fmt.Fprintf(w, "\n  port %s (%s), connect QEMU guests with:\n", sp.Name, sp)
		for j, f := range flags {
			or := "   "
			if j > 0 {
				or = "or "
			}
			if strings.HasPrefix(f, "-netdev") {
				f += " -device e1000,netdev=net0,mac=52:54:00:00:00:01"
			}
			fmt.Fprintf(w, "    %s%s\n", or, f)
		}
	}
	if guests {
		fmt.Fprintln(w, "\nGive every guest its own mac=; Zephyr and QEMU default to the same one.")
	}
}
