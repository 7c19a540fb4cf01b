package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zswitch/zswitch/impair"
)

// TestMetricsPrometheus scrapes a switch carrying traffic with a real
// Prometheus (Debian package prometheus) and runs every query of the
// Grafana dashboard through Prometheus's HTTP API: each must return data.
func TestMetricsPrometheus(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("ZSWITCH_REQUIRE_QEMU") == "1" {
			t.Fatal("prometheus not installed (apt-get install prometheus; .ci/deps.sh does)")
		}
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	exprs, vars := dashboardQueries(t, "grafana/zswitch.json")

	l := newLab(t)
	// The impairment panels need an impaired port.
	if err := l.e.SetImpairment("b", impair.Config{}, impair.Config{Delay: time.Millisecond, Loss: 0.01}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { l.trafficLoop(stop) })
	t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
	reg, err := NewRegistry(l.c)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Serve("127.0.0.1:0", reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	api := startPrometheus(t, bin, srv.Addr().String())

	// rate() over 10s needs two samples in the window; the drops panel
	// needs a runt inside it too.
	waitFor(t, "Prometheus to scrape zswitch", func() bool {
		r, err := query(api, `count_over_time(zswitch_port_rx_frames_total{port="a"}[10s]) >= 3`)
		return err == nil && len(r) > 0
	})
	if r, err := query(api, `up`); err != nil || len(r) != 1 || r[0].Value[1] != "1" {
		t.Fatalf("up = %+v, %v", r, err)
	}

	for _, e := range exprs {
		var (
			r   []sample
			err error
		)
		// A rate can be briefly empty right after a counter appears.
		for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(500 * time.Millisecond) {
			if r, err = query(api, e); err == nil && len(r) > 0 {
				break
			}
		}
		switch {
		case err != nil:
			t.Errorf("%s: %v", e, err)
		case len(r) == 0:
			t.Errorf("%s: no data", e)
		default:
			t.Logf("%s: %d series, e.g. %v %v", e, len(r), r[0].Metric, r[0].Value[1])
		}
	}
	for _, v := range vars {
		vals, err := labelValues(api, v)
		if err != nil || len(vals) == 0 {
			t.Errorf("variable %s: %v, %v", v, vals, err)
		}
	}
}

// dashboardQueries returns every PromQL expression in a dashboard, with
// Grafana's variables filled in as a user selecting "All" would, and the
// label_values() queries of its variables.
func dashboardQueries(t *testing.T, path string) (exprs, vars []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name, Type, Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, v := range d.Templating.List {
		switch {
		case v.Name == "datasource" && v.Type == "datasource":
		case v.Type == "query":
			vars = append(vars, fill(v.Definition))
		default:
			t.Errorf("%s: unexpected variable %s of type %s", path, v.Name, v.Type)
		}
	}
	if bytes.Contains(b, []byte("__inputs")) || bytes.Contains(b, []byte("DS_PROMETHEUS")) {
		t.Errorf("%s uses the __inputs form, which provisioning does not resolve", path)
	}
	var all any
	json.Unmarshal(b, &all)
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, fill(s))
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
	if len(exprs) < 20 {
		t.Fatalf("%s: only %d expressions found", path, len(exprs))
	}
	for _, e := range append(exprs, vars...) {
		if strings.Contains(e, "$") {
			t.Errorf("unfilled variable in %s", e)
		}
	}
	return exprs, vars
}

var grafanaVar = regexp.MustCompile(`\$\{?(port|instance)\}?`)

func fill(e string) string {
	e = strings.ReplaceAll(e, "$__rate_interval", "10s")
	return grafanaVar.ReplaceAllString(e, ".*")
}

// startPrometheus runs Prometheus on a free loopback port with its data
// in a temporary directory, scraping target every second. It returns the
// base URL of its API.
func startPrometheus(t *testing.T, bin, target string) string {
	dir := t.TempDir() // removed after the process is killed: cleanups run last first
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: zswitch
    static_configs:
      - targets: ['%s']
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen,
		"--log.level=warn")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	api := "http://" + listen
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		if resp, err := http.Get(api + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return api
			}
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("prometheus not ready on %s:\n%s", listen, out.String())
		}
	}
}

type sample struct {
	Metric map[string]string
	Value  [2]any // [time, "value"]
}

// query runs an instant query and returns its vector.
func query(api, expr string) ([]sample, error) {
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string
			Result     []sample
		}
	}
	if err := getJSON(api+"/api/v1/query?query="+url.QueryEscape(expr), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", r.Data.ResultType)
	}
	return r.Data.Result, nil
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// labelValues runs a Grafana label_values(selector, label) variable query
// the way Grafana does.
func labelValues(api, q string) ([]string, error) {
	m := labelValuesQuery.FindStringSubmatch(q)
	if m == nil {
		return nil, fmt.Errorf("not a label_values query: %s", q)
	}
	var r struct {
		Status, Error string
		Data          []string
	}
	if err := getJSON(api+"/api/v1/label/"+m[2]+"/values?match[]="+url.QueryEscape(m[1]), &r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query failed: %s", r.Error)
	}
	return r.Data, nil
}

func getJSON(u string, v any) error {
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: %s: %w", u, resp.Status, err)
	}
	return nil
}
