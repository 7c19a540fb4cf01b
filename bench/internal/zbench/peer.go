package zbench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// A peer is what connects the endpoints: a switch the harness started, or
// nothing at all (the baseline). Endpoint i has MAC macOf(i); endpoints
// and idle ports are attached and detached between measurements.
type peer struct {
	Version string
	Note    string
	// attach connects active endpoint i. Closing the endpoint detaches it.
	attach func(i int) (*endpoint, error)
	// attachIdle connects idle port i: attached, never sending, never read.
	attachIdle func(i int) (io.Closer, error)
	stop       func()
	// cant says, per workload, why this peer cannot run it.
	cant map[string]string
	// settle, if set, runs after endpoints were attached, before any sends.
	settle func()
	// fdbSize, if set, counts the MACs in the switch's table after learned
	// learnMACs were sent; exact is false for an estimate from a sample.
	fdbSize func(learned int) (n int, exact bool, err error)
	// diag, if set, returns the peer's own counters (printed after the runs).
	diag func() string

	eps  []*endpoint
	idle []io.Closer
}

// closerFunc adapts a function to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// ensure attaches endpoints until there are n, and has the new ones
// announce themselves so learning switches know where they are.
func (p *peer) ensure(n int) error {
	for len(p.eps) < n {
		i := len(p.eps)
		ep, err := p.attach(i)
		if err != nil {
			return fmt.Errorf("attach endpoint %d: %w", i, err)
		}
		p.eps = append(p.eps, ep)
	}
	if p.settle != nil {
		p.settle()
	}
	return nil
}

// trim detaches the endpoints beyond the first n.
func (p *peer) trim(n int) {
	for len(p.eps) > n {
		p.eps[len(p.eps)-1].close()
		p.eps = p.eps[:len(p.eps)-1]
	}
}

// setIdle attaches or detaches idle ports until there are n.
func (p *peer) setIdle(n int) error {
	for len(p.idle) > n {
		p.idle[len(p.idle)-1].Close()
		p.idle = p.idle[:len(p.idle)-1]
	}
	for len(p.idle) < n {
		c, err := p.attachIdle(len(p.idle))
		if err != nil {
			return fmt.Errorf("attach idle port %d: %w", len(p.idle), err)
		}
		p.idle = append(p.idle, c)
	}
	return nil
}

// announce has every endpoint send one broadcast, so a learning switch
// (re)learns them all (entries may have aged between measurements), then
// drains what arrived until quiet.
func (p *peer) announce() error {
	for _, ep := range p.eps {
		if err := ep.sendOne(broadcast, 0, kindAnnounce, 64); err != nil {
			return fmt.Errorf("announce %s: %w", ep.name, err)
		}
	}
	p.drain()
	return nil
}

// drain empties every endpoint at once until each was quiet for 5 ms.
func (p *peer) drain() {
	var wg sync.WaitGroup
	for _, ep := range p.eps {
		wg.Go(func() { ep.drain(5 * time.Millisecond) })
	}
	wg.Wait()
}

// close detaches everything and stops the peer.
func (p *peer) close() {
	p.setIdle(0)
	p.trim(0)
	p.stop()
}

type peerFactory struct {
	name  string
	quick bool // part of -quick
	start func(dir string) (*peer, error)
}

var factories = []peerFactory{
	{"no switch (socketpair)", true, startBaseline},
	{"zswitch", true, func(dir string) (*peer, error) { return startZswitch(dir, zsUnix) }},
	{"zswitch (TCP)", false, func(dir string) (*peer, error) { return startZswitch(dir, zsTCP) }},
	{"zswitch (backpressure)", true, func(dir string) (*peer, error) { return startZswitch(dir, zsUnixBP) }},
	{"zswitch (dgram unix)", true, func(dir string) (*peer, error) { return startZswitch(dir, zsDgramUnix) }},
	{"zswitch (dgram UDP)", false, func(dir string) (*peer, error) { return startZswitch(dir, zsDgramUDP) }},
	{"zswitch (TAP)", false, func(dir string) (*peer, error) { return startZswitch(dir, zsTAP) }},
	{"Linux bridge + TAPs", false, startBridge},
	{"QEMU multicast hub", false, startMcastHub},
	{"gvproxy (gvisor-tap-vsock)", false, startGvproxy},
	{"vde_switch (native)", false, func(dir string) (*peer, error) { return startVDE(dir, false) }},
	{"vde_switch + vde_plug", false, func(dir string) (*peer, error) { return startVDE(dir, true) }},
}

// startProc starts a peer process in its own process group so stopping it
// (by its pid) takes its children too; it dies with the harness.
func startProc(cmd *exec.Cmd) (stop func(), log *syncBuffer, err error) {
	log = new(syncBuffer)
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = log
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	return func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(2 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
	}, log, nil
}

// syncBuffer is a peer's log, written by exec's copier and read on errors.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func dialRetry(network, addr string, d time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(d)
	for {
		c, err := net.Dial(network, addr)
		if err == nil || time.Now().After(deadline) {
			return c, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeAll closes cs, last first.
func closeAll(cs []io.Closer) error {
	var errs []error
	for i := len(cs) - 1; i >= 0; i-- {
		errs = append(errs, cs[i].Close())
	}
	return errors.Join(errs...)
}
