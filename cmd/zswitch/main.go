// Command zswitch is a userspace Ethernet switch for Zephyr and QEMU labs.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `zswitch connects QEMU guests, Zephyr native_sim processes, boards and the
Linux host on one virtual Ethernet switch, without root or bridges.

Usage:
  zswitch run [--port SPEC]... [--config FILE] [--metrics-addr ADDR]
  zswitch ctl [--control PATH] COMMAND   (ports, port, add, rm, fdb; see zswitch ctl --help)
  zswitch capture [--control PATH] PORT|MEDIUM|all [-w FILE|-] [-c COUNT]   (live pcapng)
  zswitch version

With no arguments, "zswitch run" listens on /tmp/zswitch.sock and
127.0.0.1:5555 and prints the QEMU flags that connect to it.
Run "zswitch run --help" for the port spec grammar and kinds.
`

// version is set by the linker for releases.
var version = "devel"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the exit status: 0 ok, 1 failed,
// 2 the command line was wrong.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runSwitch(args[1:], stdout, stderr, nil)
	case "ctl":
		err = runCtl(args[1:], stdout, stderr)
	case "capture":
		err = runCapture(args[1:], stdout, stderr, nil)
	case "version", "--version":
		fmt.Fprintln(stdout, "zswitch", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "zswitch: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "zswitch:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError marks mistakes on the command line or in the config, which
// exit with status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
