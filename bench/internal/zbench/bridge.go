package zbench

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// startBridge: a namespace of its own with br0; every endpoint and idle
// port is a TAP the harness opens there and enslaves to br0 (the fd is
// the guest's NIC, as for QEMU -netdev tap). Needs root; the namespace
// goes with stop, and every TAP with its fd.
func startBridge(string) (*peer, error) {
	name, h, cleanupNS, err := newNS()
	if err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		cleanupNS()
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	stop := func() { nl.Close(); cleanupNS() }
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := nl.LinkAdd(br); err != nil {
		stop()
		return nil, fmt.Errorf("add br0: %w", err)
	}
	if err := nl.LinkSetUp(br); err != nil {
		stop()
		return nil, fmt.Errorf("br0 up: %w", err)
	}
	brLink, err := nl.LinkByName("br0")
	if err != nil {
		stop()
		return nil, fmt.Errorf("br0: %w", err)
	}
	brIndex := brLink.Attrs().Index
	tapOn := func(ifname string) (*os.File, error) {
		f, err := openTAP(h, ifname)
		if err != nil {
			return nil, err
		}
		l, err := nl.LinkByName(ifname)
		if err == nil {
			err = nl.LinkSetMaster(l, br)
		}
		if err == nil {
			err = nl.LinkSetUp(l)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s into br0: %w", ifname, err)
		}
		return f, nil
	}
	kv, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	p := &peer{Version: "Linux " + strings.TrimSpace(string(kv)), stop: stop, cant: map[string]string{},
		Note: "TAP fds take one frame per read/write (no batching on TAP); the kernel drops on overload, so loss is not 0"}
	p.attach = func(i int) (*endpoint, error) {
		f, err := tapOn(fmt.Sprintf("tape%d", i))
		if err != nil {
			return nil, err
		}
		return fileEndpoint(epName(i), macOf(i), f, 0), nil
	}
	p.attachIdle = func(i int) (io.Closer, error) { return tapOn(fmt.Sprintf("tapi%d", i)) }
	p.fdbSize = func(int) (int, bool, error) {
		// Entries hang off the ports, with br0 as their master.
		ns, err := nl.NeighList(0, unix.AF_BRIDGE)
		if err != nil {
			return 0, false, fmt.Errorf("bridge fdb: %w", err)
		}
		n := 0
		for _, e := range ns {
			if e.State&netlink.NUD_PERMANENT == 0 && e.MasterIndex == brIndex {
				n++
			}
		}
		return n, true, nil
	}
	return p, nil
}
