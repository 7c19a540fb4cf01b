package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrNotRunning is returned by a Client when nothing listens on its socket.
var ErrNotRunning = errors.New("no zswitch answers on the control socket")

// A Client calls the API on a unix socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{path: path, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// Ports lists ports, listeners and connections.
func (c *Client) Ports() ([]PortInfo, error) {
	var ps []PortInfo
	return ps, c.do(http.MethodGet, "/v1/ports", nil, &ps)
}

// Port describes one port.
func (c *Client) Port(name string) (PortInfo, error) {
	var p PortInfo
	return p, c.do(http.MethodGet, "/v1/ports/"+url.PathEscape(name), nil, &p)
}

// AddPort adds a port from a spec.
func (c *Client) AddPort(spec string) (PortInfo, error) {
	var p PortInfo
	return p, c.do(http.MethodPost, "/v1/ports", AddPortRequest{Spec: spec}, &p)
}

// SetOptions changes a port's run-time options; "" resets one.
func (c *Client) SetOptions(name string, opts map[string]string) (PortInfo, error) {
	var p PortInfo
	return p, c.do(http.MethodPatch, "/v1/ports/"+url.PathEscape(name), SetOptionsRequest{Options: opts}, &p)
}

// RemovePort removes a port, or a listener and its connections.
func (c *Client) RemovePort(name string) ([]string, error) {
	var r Removed
	err := c.do(http.MethodDelete, "/v1/ports/"+url.PathEscape(name), nil, &r)
	return r.Removed, err
}

// FDB lists the MAC table.
func (c *Client) FDB() ([]FDBEntry, error) {
	var es []FDBEntry
	return es, c.do(http.MethodGet, "/v1/fdb", nil, &es)
}

// AddStatic pins a MAC to a port. mac is parsed by the server.
func (c *Client) AddStatic(mac string, vlan uint16, port string) error {
	return c.do(http.MethodPost, "/v1/fdb", AddStaticRequest{MAC: mac, VLAN: vlan, Port: port}, nil)
}

// DeleteFDB removes a MAC from one VLAN, or from all if vlan < 0.
func (c *Client) DeleteFDB(mac string, vlan int) (int, error) {
	p := "/v1/fdb/" + url.PathEscape(mac)
	if vlan >= 0 {
		p += "?vlan=" + strconv.Itoa(vlan)
	}
	var n Count
	err := c.do(http.MethodDelete, p, nil, &n)
	return n.Removed, err
}

// FlushFDB removes learned entries of one port ("" for all), and static
// ones too if withStatic.
func (c *Client) FlushFDB(port string, withStatic bool) (int, error) {
	q := url.Values{}
	if port != "" {
		q.Set("port", port)
	}
	if withStatic {
		q.Set("static", "true")
	}
	p := "/v1/fdb"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var n Count
	err := c.do(http.MethodDelete, p, nil, &n)
	return n.Removed, err
}

// Captures lists the running captures.
func (c *Client) Captures() ([]CaptureInfo, error) {
	var cs []CaptureInfo
	return cs, c.do(http.MethodGet, "/v1/captures", nil, &cs)
}

// A CaptureReader is a live capture: a pcapng stream that lasts until
// Close, which stops the capture in the switch.
type CaptureReader struct {
	io.ReadCloser
	ID uint64 // the capture's ID in Captures
}

// Capture starts capturing a port, a listener's connections or "all", and
// returns the pcapng stream.
func (c *Client) Capture(port string) (*CaptureReader, error) {
	req, err := http.NewRequest(http.MethodGet, "http://zswitch/v1/capture?"+url.Values{"port": {port}}.Encode(), nil)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: c.hc.Transport} // no timeout: the stream lasts
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.connError(err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, errorAnswer(http.MethodGet, "/v1/capture", resp, b)
	}
	id, _ := strconv.ParseUint(resp.Header.Get(CaptureHeader), 10, 64)
	return &CaptureReader{ReadCloser: resp.Body, ID: id}, nil
}

// Get fetches an endpoint's JSON as is, for --json output.
func (c *Client) Get(path string) (json.RawMessage, error) {
	var m json.RawMessage
	return m, c.do(http.MethodGet, path, nil, &m)
}

// do sends a request and decodes the answer into out (if not nil). An
// error answer becomes an error with the server's message.
func (c *Client) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://zswitch"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if resp.StatusCode >= 300 {
		return errorAnswer(method, path, resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

func (c *Client) connError(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w at %s", ErrNotRunning, c.path)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}

// errorAnswer turns an error answer into an *Error with the server's message.
func errorAnswer(method, path string, resp *http.Response, body []byte) error {
	var e ErrorBody
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
	}
	return &Error{Status: resp.StatusCode, Msg: e.Error}
}
