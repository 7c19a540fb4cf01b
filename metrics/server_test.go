package metrics

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsServe(t *testing.T) {
	l := newLab(t)
	reg, err := NewRegistry(l.c)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	// An empty host listens everywhere: kept, but said.
	s, err := Serve(":0", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "every address") {
		t.Errorf("no warning about listening on every address:\n%s", logs.String())
	}
	_, port, _ := net.SplitHostPort(s.Addr().String())
	url := "http://127.0.0.1:" + port + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"zswitch_port_rx_frames_total{", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("still serving after Close")
	}

	logs.Reset()
	s, err = Serve("127.0.0.1:0", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.Contains(logs.String(), "every address") {
		t.Errorf("loopback reported as every address:\n%s", logs.String())
	}
	if _, err := Serve("9100", reg, log); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("Serve(9100) = %v, want an error asking for host:port", err)
	}
	if _, err := Serve(s.Addr().String(), reg, log); err == nil {
		t.Error("Serve on a busy address succeeded")
	}
}
