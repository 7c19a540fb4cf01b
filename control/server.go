package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultMode is the control socket's mode: only its owner may connect.
const DefaultMode os.FileMode = 0o600

// ErrInUse is returned by Serve when another process answers on the path.
var ErrInUse = errors.New("in use by a running process")

// DefaultPath is where `zswitch run` serves the API and `zswitch ctl`
// looks for it: $XDG_RUNTIME_DIR/zswitch.ctl, or /tmp/zswitch-UID.ctl.
func DefaultPath() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d + "/zswitch.ctl"
	}
	return "/tmp/zswitch-" + strconv.Itoa(os.Getuid()) + ".ctl"
}

// A Server serves the API on a unix socket until Close.
type Server struct {
	path string
	fi   os.FileInfo // the socket file it created, so Close removes only that
	srv  *http.Server
	stop context.CancelFunc // ends every request's context: live captures
	done chan struct{}
	once sync.Once
	err  error
}

// Serve serves h on a unix socket at path with the given mode (0 means
// DefaultMode). A socket file nobody answers on is replaced; one a
// process answers on is left alone and Serve returns an error wrapping
// ErrInUse. The socket only appears at path once it has its mode: it is
// bound under a temporary name, chmodded, then renamed into place.
func Serve(path string, mode os.FileMode, h http.Handler) (*Server, error) {
	if mode == 0 {
		mode = DefaultMode
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l.SetUnlinkOnClose(false) // Close removes path itself, not the temporary name
	fail := func(err error) (*Server, error) {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	base, stop := context.WithCancel(context.Background())
	s := &Server{
		path: path, fi: fi, done: make(chan struct{}), stop: stop,
		srv: &http.Server{
			Handler: h, ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return base },
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// Path is where the server listens.
func (s *Server) Path() string { return s.path }

// Close stops serving, ends streaming requests (captures), waits up to two
// seconds for other requests in flight and removes the socket file. It is
// safe to call twice.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
			os.Remove(s.path)
		}
	})
	return s.err
}

// removeStale removes a socket file at path that nobody answers on. A
// file that is not a socket is never removed.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket; remove it or pass another --control PATH", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w (another zswitch?); stop it or pass another --control PATH", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale %s: %w", path, err)
	}
	return nil
}
