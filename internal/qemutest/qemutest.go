// Package qemutest boots small Linux guests in qemu-system-x86_64 (TCG, no
// KVM needed) for integration tests, and drives their shell over the serial
// console.
//
// A guest is Debian's amd64 kernel plus a busybox initramfs built here. The
// kernel is fetched with apt-get into $ZSWITCH_QEMU_CACHE (default
// /var/cache/zswitch-qemutest) on first use; .ci/qemu-deps.sh installs the
// host packages and fills that cache ahead of time. /init loads the e1000
// driver, configures eth0 from Config and starts a root shell on ttyS0.
//
// Tests are skipped when QEMU, busybox-static or the kernel are missing, or
// in -short mode, unless ZSWITCH_REQUIRE_QEMU=1, which turns that into a
// failure.
package qemutest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config describes a guest.
type Config struct {
	// Name is the guest's hostname and appears in logs and errors.
	Name string
	// NetArgs are QEMU arguments for the guest's NICs; the first NIC is
	// eth0. Use the e1000 device, e.g. "-netdev",
	// "stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/x.sock",
	// "-device", "e1000,netdev=n0,mac=52:54:00:00:00:11".
	NetArgs []string
	// IP and IP6 are eth0's addresses in CIDR form ("10.77.0.11/24",
	// "fd77::11/64"); empty means none. IPv6 DAD is disabled so the address
	// is usable at once.
	IP, IP6 string
	// Modules are extra kernel modules to load at boot, dependencies
	// first, e.g. "slip". Only modules bundled in the initramfs (e1000,
	// slip, slhc, 8021q and its dependencies) exist; they are in
	// /lib/modules/<name>.ko for insmod.
	Modules []string
	// Files adds host files to the guest's initramfs, guest path -> host
	// path (e.g. a static test binary).
	Files map[string]string
	// ExtraArgs are appended to the QEMU command line.
	ExtraArgs []string
	// ExtraCmdline is appended to the kernel command line.
	ExtraCmdline string
	// BootTimeout bounds the boot up to the shell prompt; 0 means 2 min,
	// generous because several TCG guests may share two cores.
	BootTimeout time.Duration
}

// Guest is a running (or killed) QEMU guest. Its methods are safe for
// concurrent use; Run calls are serialized.
type Guest struct {
	cfg   Config
	qemu  []string // command line
	token string   // makes console markers unique per guest
	runMu sync.Mutex
	mu    sync.Mutex // guards the fields below
	vm    *vm
	seq   int
	past  []byte // transcripts of earlier boots
}

const (
	prompt      = "zs-qemutest# "
	readyMarker = "ZSQEMUTEST-READY"
	// transcriptLog bounds how much of a transcript a failing test logs.
	transcriptLog = 64 << 10
)

// Available reports whether guests can be booted: nil if
// qemu-system-x86_64, a static busybox and the kernel are usable. On first
// use it fetches the kernel into the cache (if apt-get can) and builds the
// initramfs, so it may take a while once.
func Available() error {
	_, err := prepare()
	return err
}

// Boot starts a guest and waits for its shell. It registers a cleanup that
// kills QEMU and, if the test failed, logs the console transcript. Boot skips
// the test when QEMU is unavailable (see the package doc) and fails it on
// any other error.
func Boot(t testing.TB, cfg Config) *Guest {
	t.Helper()
	a := requireAssets(t)
	g, err := newGuest(a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.own(t)
	if err := g.start(t); err != nil {
		t.Fatal(err)
	}
	return g
}

func requireAssets(t testing.TB) *assets {
	t.Helper()
	require := os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1"
	if testing.Short() && !require {
		t.Skip("qemutest: QEMU guests are skipped in -short mode")
	}
	a, err := prepare()
	if err != nil {
		if require {
			t.Fatalf("%v (ZSWITCH_REQUIRE_QEMU=1)", err)
		}
		t.Skipf("%v (set ZSWITCH_REQUIRE_QEMU=1 to fail instead)", err)
	}
	if a.note != "" {
		t.Logf("qemutest: %s", a.note)
	}
	return a
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,62}$`)

func newGuest(a *assets, cfg Config) (*Guest, error) {
	if cfg.Name == "" {
		cfg.Name = "guest"
	}
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("qemutest: guest name %q: want a hostname (letters, digits, '-')", cfg.Name)
	}
	fail := func(err error) (*Guest, error) {
		return nil, fmt.Errorf("qemutest: boot %s: %w", cfg.Name, err)
	}
	if cfg.IP != "" {
		if p, err := netip.ParsePrefix(cfg.IP); err != nil || !p.Addr().Is4() {
			return fail(fmt.Errorf("IP %q: want an IPv4 CIDR", cfg.IP))
		}
	}
	if cfg.IP6 != "" {
		if p, err := netip.ParsePrefix(cfg.IP6); err != nil || !p.Addr().Is6() {
			return fail(fmt.Errorf("IP6 %q: want an IPv6 CIDR", cfg.IP6))
		}
	}
	mods, err := loadOrder(a.deps, append([]string{"e1000"}, cfg.Modules...))
	if err != nil {
		return fail(err)
	}
	initrd := a.initramfs
	if len(cfg.Files) > 0 {
		extra, err := extraInitramfs(cfg.Files)
		if err != nil {
			return fail(err)
		}
		base, err := os.ReadFile(a.initramfs)
		if err != nil {
			return fail(err)
		}
		if initrd, err = writeCached(a.cacheDir, "initramfs-files", append(base, extra...)); err != nil {
			return fail(err)
		}
	}
	kcmd := []string{"console=ttyS0,115200", "quiet", "panic=-1",
		"zs.name=" + cfg.Name, "zs.mods=" + strings.Join(mods, ",")}
	if cfg.IP != "" {
		kcmd = append(kcmd, "zs.ip="+cfg.IP)
	}
	if cfg.IP6 != "" {
		kcmd = append(kcmd, "zs.ip6="+cfg.IP6)
	}
	if cfg.ExtraCmdline != "" {
		kcmd = append(kcmd, cfg.ExtraCmdline)
	}
	args := []string{a.qemu,
		"-name", "qemutest-" + cfg.Name,
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "stdio", "-accel", "tcg", "-smp", "1", "-m", "128", "-no-reboot",
		"-kernel", a.kernel, "-initrd", initrd, "-append", strings.Join(kcmd, " "),
		// QEMU's emulated autonegotiation delays e1000 link-up by ~2 s.
		"-global", "e1000.autonegotiation=off",
	}
	args = append(args, cfg.NetArgs...)
	args = append(args, cfg.ExtraArgs...)
	var tok [4]byte
	rand.Read(tok[:])
	return &Guest{cfg: cfg, qemu: args, token: hex.EncodeToString(tok[:])}, nil
}

// own registers t's cleanup: kill QEMU and, if t failed, log the
// transcript.
func (g *Guest) own(t testing.TB) {
	t.Cleanup(func() {
		g.Kill()
		if t.Failed() {
			tr := g.Transcript()
			if len(tr) > transcriptLog {
				tr = "...\n" + tr[len(tr)-transcriptLog:]
			}
			t.Logf("qemutest: %s console transcript:\n%s", g.cfg.Name, tr)
		}
	})
}

// Restart boots the guest again with the same Config, killing QEMU first if
// it still runs. It fails t on error. The guest stays owned by the test that
// booted it, whose cleanup kills it, so t may be a subtest.
func (g *Guest) Restart(t testing.TB) {
	t.Helper()
	g.Kill()
	if err := g.start(t); err != nil {
		t.Fatal(err)
	}
}

// start launches QEMU and waits for the shell prompt.
func (g *Guest) start(t testing.TB) error {
	t.Helper()
	v, err := startVM(g.qemu)
	if err != nil {
		return fmt.Errorf("qemutest: boot %s: %w", g.cfg.Name, err)
	}
	g.mu.Lock()
	if g.vm != nil {
		g.past = append(g.past, g.vm.output()...)
		g.past = append(g.past, "\n----- qemutest: restart -----\n"...)
	}
	g.vm = v
	g.mu.Unlock()

	timeout := g.cfg.BootTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ready := regexp.MustCompile(`(?s)` + readyMarker + `\r?\n.*` + regexp.QuoteMeta(prompt))
	if _, err := v.wait(0, timeout, ready); err != nil {
		g.Kill()
		return fmt.Errorf("qemutest: boot %s: waiting for the shell: %w\n%s", g.cfg.Name, err, tail(v.output(), 4096))
	}
	t.Logf("qemutest: %s booted in %v", g.cfg.Name, time.Since(v.started).Round(time.Millisecond))
	if g.cfg.IP != "" || g.cfg.IP6 != "" {
		if out, code, err := g.Run("ip addr show dev eth0", 30*time.Second); err != nil || code != 0 {
			g.Kill()
			return fmt.Errorf("qemutest: boot %s: no eth0 (check NetArgs): exit %d, %v\n%s", g.cfg.Name, code, err, out)
		}
	}
	return nil
}

// Run runs a shell command line in the guest and returns its combined
// stdout/stderr (with "\n" line ends, without the final newline) and exit
// status. cmd runs in the console shell with stdin from /dev/null, so shell
// state such as cd or variables persists between calls. Keep cmd under
// 4 KiB (the tty's line limit; use Config.Files for data) and redirect the
// output of background jobs, or it shows up in a later Run. err is only for
// console failures: QEMU not running, or timeout (then ^C is sent to the
// command).
func (g *Guest) Run(cmd string, timeout time.Duration) (out string, exit int, err error) {
	g.runMu.Lock()
	defer g.runMu.Unlock()
	g.mu.Lock()
	v := g.vm
	g.seq++
	id := fmt.Sprintf("%sn%d", g.token, g.seq)
	g.mu.Unlock()
	fail := func(err error) (string, int, error) {
		return "", -1, fmt.Errorf("qemutest: %s: run %q: %w", g.cfg.Name, cmd, err)
	}
	if v == nil || v.hasExited() {
		return fail(errors.New("guest is not running"))
	}
	if strings.TrimSpace(cmd) == "" {
		cmd = ":"
	}
	// The markers are split by "" in the typed text, so even if the tty
	// echoed input, only the shell's output would match.
	begin, end := "__ZSB"+id+"__", "__ZSE"+id+"__"
	line := fmt.Sprintf("echo __ZSB\"\"%s__; { %s\n} </dev/null; echo __ZSE\"\"%s__:$?\n", id, cmd, id)
	if len(line) > 4000 {
		return fail(fmt.Errorf("command too long (%d bytes)", len(cmd)))
	}
	re := regexp.MustCompile(`(?s)` + begin + `\r?\n(.*?)` + end + `:(\d+)\r?\n`)
	from := v.size()
	if _, err := io.WriteString(v.stdin, line); err != nil {
		return fail(fmt.Errorf("write console: %w", err))
	}
	m, err := v.wait(from, timeout, re)
	if err != nil {
		if errors.Is(err, errTimeout) {
			io.WriteString(v.stdin, "\x03") // SIGINT to the hung command
		}
		return fail(fmt.Errorf("%w\n%s", err, tail(v.output(), 2048)))
	}
	exit, _ = strconv.Atoi(string(m[2]))
	out = strings.ReplaceAll(string(m[1]), "\r\n", "\n")
	return strings.TrimSuffix(out, "\n"), exit, nil
}

// Ping pings addr (IPv4 or IPv6) from the guest with count echo requests,
// retrying twice because the first may be spent on ARP/ND against a peer
// still coming up. It fails only if no reply at all arrived.
func (g *Guest) Ping(addr string, count int) error {
	count = max(count, 1)
	family := ""
	if strings.Contains(addr, ":") {
		family = "-6 "
	}
	cmd := fmt.Sprintf("ping %s-c %d -W 2 %s", family, count, addr)
	var out string
	for range 3 {
		o, code, err := g.Run(cmd, time.Duration(count)*time.Second+time.Minute)
		if err != nil {
			return err
		}
		if code == 0 {
			return nil
		}
		out = o
	}
	return fmt.Errorf("qemutest: %s: ping %s: no reply in 3 tries:\n%s", g.cfg.Name, addr, out)
}

// Kill kills QEMU at once, like a crash of the guest, and waits for it to
// exit. It is a no-op if QEMU is not running.
func (g *Guest) Kill() {
	g.mu.Lock()
	v := g.vm
	g.mu.Unlock()
	if v != nil {
		v.kill()
	}
}

// Name returns the guest's Config.Name.
func (g *Guest) Name() string { return g.cfg.Name }

// Transcript returns everything the guest's console and QEMU's stderr
// printed, over all boots.
func (g *Guest) Transcript() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := string(g.past)
	if g.vm != nil {
		s += string(g.vm.output())
	}
	return s
}

var errTimeout = errors.New("timed out")

// vm is one QEMU process.
type vm struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started time.Time
	exited  chan struct{} // closed when QEMU has exited
	exitErr error         // set before exited is closed

	mu     sync.Mutex
	out    []byte        // console output
	stderr []byte        // QEMU's own messages
	grown  chan struct{} // closed and replaced whenever out grows
}

func startVM(args []string) (*vm, error) {
	v := &vm{exited: make(chan struct{}), grown: make(chan struct{})}
	v.cmd = exec.Command(args[0], args[1:]...)
	v.cmd.Stdout = consoleWriter{v}
	v.cmd.Stderr = stderrWriter{v}
	// Die with the test binary even if it is killed before its cleanups.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if v.stdin, err = v.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	v.started = time.Now()
	// Pdeathsig fires when the thread that forked QEMU exits, not the test
	// process. Go ends a thread whose goroutine exits while locked to it,
	// as helpers that enter network namespaces do, so a fork from any
	// thread could kill the guest mid-test. QEMU is forked from a thread
	// locked until it exits.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := v.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		v.exitErr = v.cmd.Wait()
		close(v.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return v, nil
}

type consoleWriter struct{ v *vm }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.v.mu.Lock()
	w.v.out = append(w.v.out, p...)
	close(w.v.grown)
	w.v.grown = make(chan struct{})
	w.v.mu.Unlock()
	return len(p), nil
}

type stderrWriter struct{ v *vm }

func (w stderrWriter) Write(p []byte) (int, error) {
	w.v.mu.Lock()
	w.v.stderr = append(w.v.stderr, p...)
	w.v.mu.Unlock()
	return len(p), nil
}

func (v *vm) size() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.out)
}

// output returns the console output followed by QEMU's stderr, if any.
func (v *vm) output() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := bytes.Clone(v.out)
	if len(v.stderr) > 0 {
		b = append(b, "\n----- qemu stderr -----\n"...)
		b = append(b, v.stderr...)
	}
	select {
	case <-v.exited:
		b = fmt.Appendf(b, "\n----- qemu exited: %v -----\n", v.exitErr)
	default:
	}
	return b
}

func (v *vm) hasExited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// wait waits until re matches the console output from offset from on and
// returns the submatches.
func (v *vm) wait(from int, timeout time.Duration, re *regexp.Regexp) ([][]byte, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		v.mu.Lock()
		buf, grown := v.out[from:len(v.out):len(v.out)], v.grown
		v.mu.Unlock()
		if m := re.FindSubmatch(buf); m != nil {
			return m, nil
		}
		select {
		case <-grown:
		case <-v.exited:
			// Wait returns after all output was copied; look once more.
			if m := re.FindSubmatch(v.out[from:]); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("qemu exited: %v", v.exitErr)
		case <-timer.C:
			return nil, fmt.Errorf("%w after %v", errTimeout, timeout)
		}
	}
}

func (v *vm) kill() {
	if !v.hasExited() {
		v.cmd.Process.Kill()
	}
	<-v.exited
}

func tail(b []byte, n int) string {
	if len(b) > n {
		return "...\n" + string(b[len(b)-n:])
	}
	return string(b)
}
