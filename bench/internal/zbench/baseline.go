package zbench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// startBaseline joins endpoints 2k and 2k+1 directly with a unix stream
// socketpair, QEMU framing: the generator's own ceiling. Nothing joins
// more than two endpoints, so it has no broadcast and no switch state.
func startBaseline(string) (*peer, error) {
	var pending *endpoint // the odd end of the last socketpair
	p := &peer{Version: "unix socketpair", stop: func() {}}
	p.attach = func(i int) (*endpoint, error) {
		if i%2 == 1 {
			ep := pending
			pending = nil
			return ep, nil
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socketpair: %w", err)
		}
		pending = fileEndpoint(epName(i+1), macOf(i+1), os.NewFile(uintptr(fds[1]), "sp"), 4)
		return fileEndpoint(epName(i), macOf(i), os.NewFile(uintptr(fds[0]), "sp"), 4), nil
	}
	const why = "no switch: a socketpair joins exactly two endpoints"
	p.cant = map[string]string{WBcast: why, WIdle8: why, WIdle64: why, WIdle256: why, WLearn: why}
	return p, nil
}
