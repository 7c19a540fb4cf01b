package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/zswitch/zswitch/control"
)

const ctlUsage = `Usage: zswitch ctl [--control PATH] [--json] COMMAND

Commands:
  ports                        list ports, listeners and connections with counters
  port NAME                    one port in detail, drops by reason
  add SPEC                     add a port at run time (the --port SPEC grammar)
  set NAME key=value…          change a port's VLANs, security or link impairment
                               while it runs (key= resets one), e.g. vlan=100
  rm NAME                      remove a port, or a listener and its connections
  fdb                          list the MAC table
  fdb add MAC PORT [--vlan N]  pin MAC to PORT (until PORT leaves)
  fdb rm MAC [--vlan N]        remove MAC (from every VLAN without --vlan)
  fdb flush [PORT] [--static]  forget learned MACs (of PORT); --static too

zswitch ctl talks to "zswitch run" over its control socket, by default the
same as run's: $XDG_RUNTIME_DIR/zswitch.ctl, else /tmp/zswitch-UID.ctl.
`

// ctlOptions are the flags every ctl command takes, before or after it.
type ctlOptions struct {
	control string
	json    bool
	vlan    int
	static  bool
	out     io.Writer
}

// runCtl is `zswitch ctl`.
func runCtl(args []string, stdout, stderr io.Writer) error {
	o := &ctlOptions{out: stdout, vlan: -1}
	fs := flag.NewFlagSet("zswitch ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.control, "control", control.DefaultPath(), "the control socket of zswitch run, `PATH`")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON instead of tables")
	fs.Func("vlan", "VLAN `N` (1..4094) for fdb add (default: the port's untagged VLAN) and fdb rm (default every VLAN)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 4094 {
			return fmt.Errorf("%q is not a number from 0 to 4094", v)
		}
		o.vlan = n
		return nil
	})
	fs.BoolVar(&o.static, "static", false, "fdb flush: remove static entries too")
	fs.Usage = func() {
		fmt.Fprint(stderr, ctlUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if len(pos) == 0 {
		fs.Usage()
		return usageError{errors.New("ctl: missing command")}
	}
	if o.control == "" {
		return usageError{errors.New("ctl: --control is empty; give the socket zswitch run serves")}
	}
	c := control.NewClient(o.control)
	want := func(n int, what string) error {
		if len(pos)-1 != n {
			return usageError{fmt.Errorf("ctl %s: want %s", pos[0], what)}
		}
		return nil
	}
	switch pos[0] {
	case "ports", "ls":
		if err := want(0, "no arguments"); err != nil {
			return err
		}
		ps, err := c.Ports()
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(ps, func(w io.Writer) { printPorts(w, ps) })
	case "port", "show":
		if err := want(1, "a port NAME"); err != nil {
			return err
		}
		p, err := c.Port(pos[1])
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(p, func(w io.Writer) { printPort(w, p) })
	case "add":
		if err := want(1, "one SPEC, e.g. zswitch ctl add stream-listen:unix:/tmp/vm3.sock"); err != nil {
			return err
		}
		p, err := c.AddPort(pos[1])
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(p, func(w io.Writer) { printAdded(w, p) })
	case "set":
		if len(pos) < 3 {
			return usageError{errors.New("ctl set: want a port NAME and key=value options, e.g. zswitch ctl set qemu/1 vlan=100 out.loss=1%")}
		}
		opts := map[string]string{}
		for _, kv := range pos[2:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usageError{fmt.Errorf("ctl set: %q: want key=value (key= resets it)", kv)}
			}
			opts[k] = v
		}
		p, err := c.SetOptions(pos[1], opts)
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(p, func(w io.Writer) { printPort(w, p) })
	case "rm", "remove", "del":
		if err := want(1, "a port NAME"); err != nil {
			return err
		}
		names, err := c.RemovePort(pos[1])
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(control.Removed{Removed: names}, func(w io.Writer) {
			fmt.Fprintf(w, "removed %s\n", strings.Join(names, ", "))
		})
	case "fdb":
		return ctlFDB(o, c, pos[1:])
	case "captures":
		if err := want(0, "no arguments"); err != nil {
			return err
		}
		cs, err := c.Captures()
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(cs, func(w io.Writer) { printCaptures(w, cs) })
	default:
		return usageError{fmt.Errorf("ctl: unknown command %q; commands: ports, port, add, rm, fdb, captures", pos[0])}
	}
}

func ctlFDB(o *ctlOptions, c *control.Client, args []string) error {
	sub := "show"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "show", "ls":
		if len(args) != 0 {
			return usageError{fmt.Errorf("ctl fdb: unexpected %q; fdb subcommands: add, rm, flush", args[0])}
		}
		es, err := c.FDB()
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(es, func(w io.Writer) { printFDB(w, es) })
	case "add":
		if len(args) != 2 {
			return usageError{errors.New("ctl fdb add: want MAC PORT, e.g. zswitch ctl fdb add 52:54:00:00:00:01 qemu/1")}
		}
		vlan := max(o.vlan, 0)
		if err := c.AddStatic(args[0], uint16(vlan), args[1]); err != nil {
			return ctlError(o, err)
		}
		e := control.FDBEntry{Port: args[1], VLAN: uint16(vlan), Static: true}
		e.MAC.UnmarshalText([]byte(args[0]))
		return o.print(e, func(w io.Writer) {
			if vlan == 0 {
				fmt.Fprintf(w, "pinned %s to %s in its untagged VLAN\n", e.MAC, args[1])
				return
			}
			fmt.Fprintf(w, "pinned %s vlan %d to %s\n", e.MAC, vlan, args[1])
		})
	case "rm", "del":
		if len(args) != 1 {
			return usageError{errors.New("ctl fdb rm: want one MAC")}
		}
		n, err := c.DeleteFDB(args[0], o.vlan)
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(control.Count{Removed: n}, func(w io.Writer) { fmt.Fprintf(w, "removed %d %s\n", n, plural(n, "entry", "entries")) })
	case "flush":
		if len(args) > 1 {
			return usageError{errors.New("ctl fdb flush: want at most one PORT")}
		}
		port := ""
		if len(args) == 1 {
			port = args[0]
		}
		n, err := c.FlushFDB(port, o.static)
		if err != nil {
			return ctlError(o, err)
		}
		return o.print(control.Count{Removed: n}, func(w io.Writer) { fmt.Fprintf(w, "flushed %d %s\n", n, plural(n, "entry", "entries")) })
	default:
		return usageError{fmt.Errorf("ctl fdb: unknown subcommand %q; fdb subcommands: add, rm, flush", sub)}
	}
}

// parseInterspersed parses flags wherever they are among the arguments,
// so "ctl ports --json" works like "ctl --json ports".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// ctlError turns an API failure into the line the user sees.
func ctlError(o *ctlOptions, err error) error {
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("no zswitch answers on %s: is zswitch running? start it with zswitch run, or pass --control PATH", o.control)
	}
	return err
}

func (o *ctlOptions) print(v any, text func(io.Writer)) error {
	if o.json {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.out, "%s\n", b)
		return err
	}
	text(o.out)
	return nil
}

func printPorts(w io.Writer, ps []control.PortInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tLINK\tRX\tTX\tDROPS")
	for _, p := range ps {
		if p.Listener {
			fmt.Fprintf(tw, "%s\t%s\tlistening (%d accepted)\t-\t-\t-\n", p.Name, p.Kind, p.Accepted)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", p.Name, p.Kind, link(p.LinkUp), p.RxFrames, p.TxFrames, p.Drops)
	}
	tw.Flush()
}

func link(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func printPort(w io.Writer, p control.PortInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }
	row("name", "%s", p.Name)
	row("kind", "%s", p.Kind)
	row("segment", "%s", p.Segment)
	if p.Spec != "" {
		row("spec", "%s", p.Spec)
	}
	if !p.Since.IsZero() {
		row("since", "%s (%s ago)", p.Since.Format(time.DateTime), time.Since(p.Since).Round(time.Second))
	}
	if p.Listener {
		row("listening on", "%s", p.Addr)
		row("accepted", "%d connections, each a port %s/N", p.Accepted, p.Name)
		tw.Flush()
		return
	}
	row("link", "%s", link(p.LinkUp))
	if p.Config != "" {
		row("config", "%s", p.Config)
	}
	if len(p.Options) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(p.Options)) {
			kv = append(kv, k+"="+p.Options[k])
		}
		row("options", "%s", strings.Join(kv, " "))
	}
	if p.Segment == "ethernet" {
		row("MACs", "%d learned (%d moved in)", p.MACs, p.MACMoves)
	}
	row("rx", "%d frames, %d bytes", p.RxFrames, p.RxBytes)
	row("tx", "%d frames, %d bytes", p.TxFrames, p.TxBytes)
	if p.TxDirect > 0 {
		row("tx direct", "%d frames (written without the queue hop)", p.TxDirect)
	}
	row("forwarded", "%d (flooded %d)", p.Forwarded, p.Flooded)
	row("rx invalid", "%d", p.RxInvalid)
	row("errors", "%d", p.Errors)
	row("connects", "%d (disconnects %d)", p.Connects, p.Disconnects)
	if p.LearnRefused > 0 {
		row("learn refused", "%d", p.LearnRefused)
	}
	row("queue", "%d frames (high water %d)", p.QueueDepth, p.QueueHigh)
	row("drops in", "%s", reasons(p.DropsIn))
	row("drops out", "%s", reasons(p.DropsOut))
	tw.Flush()
}

func reasons(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" "+strconv.FormatUint(m[k], 10))
	}
	return strings.Join(parts, ", ")
}

func printAdded(w io.Writer, p control.PortInfo) {
	what := "port"
	if p.Listener {
		what = "listener"
	}
	fmt.Fprintf(w, "added %s %s (%s)\n", what, p.Name, p.Spec)
	for _, h := range p.Hints {
		fmt.Fprintf(w, "  %s\n", h)
	}
	if len(p.QEMU) > 0 {
		fmt.Fprintln(w, "connect QEMU guests with:")
		for _, f := range p.QEMU {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}

// printCaptures lists running captures; `zswitch capture` starts one and
// ends it when it exits.
func printCaptures(w io.Writer, cs []control.CaptureInfo) {
	if len(cs) == 0 {
		fmt.Fprintln(w, "no captures running; start one with zswitch capture PORT|all -w FILE")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPORT\tSINCE\tFRAMES\tBYTES\tDROPS")
	for _, c := range cs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\n", c.ID, c.Port, c.Since.Format(time.TimeOnly), c.Frames, c.Bytes, c.Drops)
	}
	tw.Flush()
}

func printFDB(w io.Writer, es []control.FDBEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tVLAN\tPORT\tAGE\tSTATIC")
	for _, e := range es {
		age, static := strconv.FormatFloat(e.Age, 'f', 1, 64)+"s", "no"
		switch {
		case e.Sticky:
			static = "sticky"
		case e.Static:
			age, static = "-", "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", e.MAC, e.VLAN, e.Port, age, static)
	}
	tw.Flush()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
