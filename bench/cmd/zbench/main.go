// Command zbench runs the switch benchmarks of issue 6: it starts zswitch
// (over stream, datagram and TAP ports), the Linux bridge, QEMU's
// multicast hub, gvproxy, vde_switch and a no-switch baseline side by
// side, emulates guest endpoints on each, shows its progress on stderr and
// writes a Markdown table and an SVG chart to bench/results/<date>.{md,svg}.
//
//	go run ./bench/cmd/zbench [-quick] [-out bench/results]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/bench/internal/zbench"
)

func main() {
	quick := flag.Bool("quick", false, "small counts, zswitch (unix, dgram unix) and the baseline only (CI)")
	out := flag.String("out", "bench/results", "directory for <date>.md and <date>.svg; empty: do not write")
	runs := flag.Int("runs", 3, "runs per measurement")
	dur := flag.Duration("dur", 0, "length of one throughput run (default 1s, quick 150ms)")
	rtt := flag.Int("rtt", 0, "ping-pongs per latency run (default 20000, quick 500)")
	learn := flag.Int("learn", 0, "MACs of the table workload (default 100000, quick 5000)")
	peers := flag.String("peers", "", "comma-separated peer names (substrings, or =NAME exactly) to run; default all")
	wls := flag.String("workloads", "", "comma-separated workload names (substrings) to run; default all")
	bin := flag.String("zswitch", "", "use this zswitch binary instead of building ./cmd/zswitch")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opt := zbench.Options{Quick: *quick, Runs: *runs, Dur: *dur, RTTCount: *rtt, LearnMACs: *learn,
		ZswitchBin: *bin, Progress: os.Stderr, Log: log}
	if *peers != "" {
		opt.Peers = strings.Split(*peers, ",")
	}
	if *wls != "" {
		opt.Workloads = strings.Split(*wls, ",")
	}
	// Run stops its peers and deletes its namespaces when it returns; on
	// SIGINT/SIGTERM stop after the current measurement and let it clean up.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	type result struct {
		rep *zbench.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := zbench.Run(opt)
		done <- result{rep, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-sig:
		fmt.Fprintln(os.Stderr, "zbench: interrupted, cleaning up")
		zbench.Abort()
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
		}
		os.Exit(130)
	}
	if r.err != nil {
		log.Error("zbench failed", "err", r.err)
		os.Exit(1)
	}
	fmt.Print(r.rep.Markdown())
	if *out != "" {
		path, err := r.rep.Write(*out)
		if err != nil {
			log.Error("zbench: writing results", "err", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "wrote", path, "and its .svg")
	}
}
