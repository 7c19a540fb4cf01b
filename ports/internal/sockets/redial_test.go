package sockets

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// A failure is one call of Redialer.Failed.
type failure struct {
	first   bool
	retryIn time.Duration
}

// script is a Redialer.Dial that fails or succeeds as plan says, in turn,
// and cancels the test's context when the plan runs out.
type script struct {
	mu       sync.Mutex
	plan     []bool // true: succeed
	cancel   context.CancelFunc
	failures []failure
	serves   int
}

var errRefused = errors.New("refused")

func (s *script) dial(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.plan) == 0 {
		s.cancel()
		return 0, ctx.Err()
	}
	ok := s.plan[0]
	s.plan = s.plan[1:]
	if !ok {
		return 0, errRefused
	}
	return 1, nil
}

func (s *script) failed(err error, first bool, retryIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !errors.Is(err, errRefused) {
		panic(err)
	}
	s.failures = append(s.failures, failure{first, retryIn})
}

func (s *script) serve(int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serves++
	return true
}

func run(t *testing.T, plan []bool, lo, hi time.Duration) *script {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &script{plan: plan, cancel: cancel}
	r := &Redialer[int]{Dial: s.dial, Min: lo, Max: hi, Failed: s.failed, Serve: s.serve}
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	return s
}

func TestRedialBackoffDoubles(t *testing.T) {
	const ms = time.Millisecond
	s := run(t, []bool{false, false, false, false, false, false}, ms, 5*ms)
	want := []failure{{true, ms}, {false, 2 * ms}, {false, 4 * ms}, {false, 5 * ms}, {false, 5 * ms}, {false, 5 * ms}}
	if !slices.Equal(s.failures, want) {
		t.Fatalf("failures %v, want %v", s.failures, want)
	}
}

func TestRedialResetsAfterConnection(t *testing.T) {
	const ms = time.Millisecond
	s := run(t, []bool{false, false, false, true, false, false, true, true, false}, ms, 8*ms)
	want := []failure{
		{true, ms}, {false, 2 * ms}, {false, 4 * ms}, // connected
		{true, ms}, {false, 2 * ms}, // connected twice
		{true, ms},
	}
	if !slices.Equal(s.failures, want) {
		t.Fatalf("failures %v, want %v", s.failures, want)
	}
	if s.serves != 3 {
		t.Fatalf("%d connections served, want 3", s.serves)
	}
}

func TestRedialTiming(t *testing.T) {
	// Attempts at 0, 20, 60, 140, 220, 300, 380, 460 ms: 8, give or take.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var n int
	r := &Redialer[int]{
		Dial:   func(context.Context) (int, error) { return 0, errRefused },
		Min:    20 * time.Millisecond,
		Max:    80 * time.Millisecond,
		Failed: func(error, bool, time.Duration) { n++ },
	}
	r.Run(ctx)
	if n < 4 || n > 12 {
		t.Fatalf("%d failed attempts in 500ms, want about 8", n)
	}
}

func TestRedialServeStops(t *testing.T) {
	calls := 0
	r := &Redialer[int]{
		Dial:  func(context.Context) (int, error) { calls++; return calls, nil },
		Min:   time.Millisecond,
		Max:   time.Millisecond,
		Serve: func(c int) bool { return c < 3 },
	}
	r.Run(context.Background())
	if calls != 3 {
		t.Fatalf("%d dials, want 3: Serve returned false at the third", calls)
	}
}

// TestRedialCancel stops Run in each of its waits: a dial in progress, the
// wait after a failure, and a wait after a connection. A failure that the
// cancel caused is not reported.
func TestRedialCancel(t *testing.T) {
	for _, tc := range []struct {
		name string
		dial func(context.Context) (int, error)
	}{
		{"dialling", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }},
		{"after failure", func(context.Context) (int, error) { return 0, errRefused }},
		{"after connection", func(context.Context) (int, error) { return 1, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var mu sync.Mutex
			var failures int
			r := &Redialer[int]{
				Dial:   tc.dial,
				Min:    time.Hour,
				Max:    time.Hour,
				Failed: func(error, bool, time.Duration) { mu.Lock(); failures++; mu.Unlock() },
				Serve:  func(int) bool { return true },
			}
			done := make(chan struct{})
			go func() { r.Run(ctx); close(done) }()
			time.Sleep(20 * time.Millisecond)
			cancel()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("cancel did not stop Run")
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.name == "dialling" && failures != 0 {
				t.Fatalf("%d failures reported for a cancelled dial", failures)
			}
		})
	}
}

func TestRedialBadBackoff(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Run with Min 0: no panic")
		}
	}()
	(&Redialer[int]{}).Run(context.Background())
}

func TestCheckDial(t *testing.T) {
	for _, tc := range []struct {
		network, addr string
		want          error
	}{
		{"unix", "/x", nil}, {"tcp", "h:1", nil}, {"tcp4", "h:1", nil}, {"tcp6", "h:1", nil},
		{"udp", "127.0.0.1:1", ErrNetwork}, {"", "x", ErrNetwork}, {"unixgram", "/x", ErrNetwork},
		{"unix", "", ErrNoAddr}, {"", "", ErrNetwork},
	} {
		if err := CheckDial(tc.network, tc.addr); err != tc.want {
			t.Errorf("CheckDial(%q, %q) = %v, want %v", tc.network, tc.addr, err, tc.want)
		}
	}
}

func TestDialer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.sock")
	dial := Dialer("unix", path)
	if _, err := dial(context.Background()); err == nil {
		t.Fatal("dial with nobody listening: no error")
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := dial(ctx); err == nil {
		t.Fatal("dial with a cancelled context: no error")
	}
}
