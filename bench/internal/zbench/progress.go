package zbench

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// progress shows where a run is: one line per finished measurement, e.g.
//
//	[12/84] zswitch · 8 pairs 64 B · run 2/3 · 1.21M fps, loss 3% · eta 2m10s
//
// On a terminal the measurement under way is shown too, and overwritten.
type progress struct {
	w           io.Writer
	tty         bool
	total, done int
	t0          time.Time
	cur         string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

// note prints a line that is not a measurement (peer start-up, counters).
func (p *progress) note(format string, args ...any) {
	if p.w == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) start(total int) { p.total, p.t0 = total, time.Now() }

func (p *progress) begin(peer, workload string, run, runs int) {
	p.cur = fmt.Sprintf("[%d/%d] %s · %s · run %d/%d", p.done+1, p.total, peer, workload, run, runs)
	if p.w != nil && p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s …", p.cur)
	}
}

func (p *progress) end(result string) {
	p.done++
	if p.w == nil {
		return
	}
	eta := ""
	if p.done < p.total {
		left := time.Since(p.t0) / time.Duration(p.done) * time.Duration(p.total-p.done)
		eta = " · eta " + left.Round(time.Second).String()
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s · %s%s\n", p.cur, result, eta)
}

func (p *progress) finish() {
	if p.w != nil {
		fmt.Fprintf(p.w, "%d measurements in %v\n", p.done, time.Since(p.t0).Round(time.Second))
	}
}
