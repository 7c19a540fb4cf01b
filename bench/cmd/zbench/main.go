// Command zbench runs the switch benchmarks of issue 6: it starts zswitch,
// the Linux bridge, vde_switch and a no-switch baseline side by side,
// emulates two endpoints on each, and writes a Markdown table to
// bench/results/<date>.md.
//
//	go run ./bench/cmd/zbench [-quick] [-out bench/results]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/zswitch/zswitch/bench/internal/zbench"
)

func main() {
	quick := flag.Bool("quick", false, "small counts, zswitch and the baseline only (CI)")
	out := flag.String("out", "bench/results", "directory for <date>.md; empty: do not write")
	runs := flag.Int("runs", 3, "runs per measurement")
	dur := flag.Duration("dur", 0, "length of one throughput run (default 1s, quick 150ms)")
	rtt := flag.Int("rtt", 0, "ping-pongs per latency run (default 20000, quick 500)")
	peers := flag.String("peers", "", "comma-separated peer names (substrings) to run; default all")
	flag.Parse()

	opt := zbench.Options{Quick: *quick, Runs: *runs, Dur: *dur, RTTCount: *rtt, Progress: os.Stderr}
	if *peers != "" {
		opt.Peers = strings.Split(*peers, ",")
	}
	// Run stops its peers and deletes its namespace when it returns; on
	// SIGINT/SIGTERM stop reading more work and let the defers run.
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
		case <-time.After(10 * time.Second):
		}
		os.Exit(130)
	}
	if r.err != nil {
		fmt.Fprintln(os.Stderr, "zbench:", r.err)
		os.Exit(1)
	}
	md := r.rep.Markdown()
	fmt.Print(md)
	if *out != "" {
		path, err := r.rep.Write(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "zbench:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "wrote", path)
	}
}
