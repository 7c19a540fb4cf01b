// Package control is zswitch's control API: HTTP/JSON on a unix socket,
// through which `zswitch ctl` lists ports and their counters, adds and
// removes ports at run time and reads and edits the MAC table.
//
// The package knows nothing of the engine. The command implements Switch;
// Handler turns it into the HTTP API, Serve puts a handler on a unix socket
// and Client calls it.
//
// # Endpoints
//
//	GET    /v1/ports                  every port, listener and connection, with counters
//	GET    /v1/ports/{name}           one of them
//	POST   /v1/ports                  {"spec": "KIND:…"} adds a port at run time
//	DELETE /v1/ports/{name}           removes a port, or a listener and its connections
//	GET    /v1/fdb                    the MAC table
//	POST   /v1/fdb                    {"mac", "vlan", "port"} adds a static entry
//	DELETE /v1/fdb[?port=P][&static=true]   flushes learned entries (and static ones)
//	DELETE /v1/fdb/{mac}[?vlan=N]     removes one MAC (in every VLAN without vlan=)
//	GET    /v1/capture?port=NAME|all  streams a live capture as pcapng until the client hangs up
//	GET    /v1/captures               running captures with their frame and drop counts
//
// Errors come back as {"error": "…"} with a status code: 400 for a bad
// request, 404 for an unknown port or MAC, 409 for a name or address in use.
package control

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/zswitch/zswitch/fdb"
)

// Switch is what the API controls. Methods are called concurrently.
// Errors made with NotFound, Conflict or Invalid get those status codes;
// any other error is a 500 with its message.
type Switch interface {
	// Ports lists ports, listeners and accepted connections.
	Ports() []PortInfo
	// Port describes one by name.
	Port(name string) (PortInfo, error)
	// SetOptions changes a port's run-time options (VLANs, port security,
	// link impairments: the spec keys that may change while it runs). An
	// empty value returns that option to its default.
	SetOptions(name string, opts map[string]string) (PortInfo, error)
	// AddPort parses spec with the port spec grammar, opens it and attaches it.
	AddPort(spec string) (PortInfo, error)
	// RemovePort detaches a port, or closes a listener and detaches its
	// connections, and returns the names it removed.
	RemovePort(name string) ([]string, error)
	// FDB lists the MAC table.
	FDB() ([]FDBEntry, error)
	// AddStatic pins mac in vlan to a port.
	AddStatic(mac fdb.MAC, vlan uint16, port string) error
	// DeleteFDB removes mac from one VLAN, or from every VLAN if vlan < 0,
	// and returns how many entries it removed.
	DeleteFDB(mac fdb.MAC, vlan int) (int, error)
	// FlushFDB removes the learned entries of one port ("" for all), and the
	// static ones too if withStatic, and returns how many it removed.
	FlushFDB(port string, withStatic bool) (int, error)
	// Capture starts capturing a port, a listener's connections or "all";
	// the caller streams it and closes it.
	Capture(port string) (CaptureStream, error)
	// Captures lists the running captures.
	Captures() []CaptureInfo
}

// PortInfo describes a port, a listener or an accepted connection.
type PortInfo struct {
	Name    string    `json:"name"`
	Kind    string    `json:"kind"`
	Segment string    `json:"segment"`        // "ethernet" or "802.15.4"
	Spec    string    `json:"spec,omitempty"` // canonical spec, for what was added from one
	Since   time.Time `json:"since"`

	// Listener is set for a listener: it carries no frames itself; each
	// connection it accepted is a port named NAME/1, NAME/2, …
	Listener bool   `json:"listener,omitempty"`
	Addr     string `json:"addr,omitempty"`
	Accepted uint64 `json:"accepted,omitempty"`

	LinkUp       bool              `json:"link_up"`
	RxFrames     uint64            `json:"rx_frames"`
	RxBytes      uint64            `json:"rx_bytes"`
	TxFrames     uint64            `json:"tx_frames"`
	TxBytes      uint64            `json:"tx_bytes"`
	Forwarded    uint64            `json:"forwarded"`
	Flooded      uint64            `json:"flooded"`
	RxInvalid    uint64            `json:"rx_invalid"`
	LearnRefused uint64            `json:"learn_refused"`
	Errors       uint64            `json:"errors"`
	Connects     uint64            `json:"connects"`
	Disconnects  uint64            `json:"disconnects"`
	Drops        uint64            `json:"drops"`               // all reasons, both directions
	DropsIn      map[string]uint64 `json:"drops_in,omitempty"`  // at ingress, by reason; only reasons seen
	DropsOut     map[string]uint64 `json:"drops_out,omitempty"` // at egress, by reason
	QueueDepth   int64             `json:"queue_depth"`
	QueueHigh    int64             `json:"queue_high_water"`
	TxDirect     uint64            `json:"tx_direct,omitempty"` // of tx_frames, written by the receiving port's goroutine (no queue hop)
	MACs         int               `json:"macs,omitempty"`      // learned on the port
	MACMoves     uint64            `json:"mac_moves,omitempty"` // MACs that moved here from another port

	// Config summarises the port's VLANs and security ("access 100",
	// "trunk all native 1, isolated"); Options are its run-time options as
	// spec keys, those set in the spec and by SetOptions.
	Config  string            `json:"config,omitempty"`
	Options map[string]string `json:"options,omitempty"`

	// QEMU and Hints say how to connect to a port just added (POST only).
	QEMU  []string `json:"qemu,omitempty"`
	Hints []string `json:"hints,omitempty"`
}

// FDBEntry is one row of the MAC table.
type FDBEntry struct {
	MAC    fdb.MAC `json:"mac"`
	VLAN   uint16  `json:"vlan"`
	Port   string  `json:"port"`
	Static bool    `json:"static"`
	Sticky bool    `json:"sticky,omitempty"` // learned on a sticky port, held like a static entry
	// Age is the seconds since the MAC was last seen; 0 for static entries.
	Age float64 `json:"age_seconds"`
}

// SetOptionsRequest is the body of PATCH /v1/ports/{name}.
type SetOptionsRequest struct {
	Options map[string]string `json:"options"`
}

// AddPortRequest is the body of POST /v1/ports.
type AddPortRequest struct {
	Spec string `json:"spec"`
}

// AddStaticRequest is the body of POST /v1/fdb.
type AddStaticRequest struct {
	MAC  string `json:"mac"`
	VLAN uint16 `json:"vlan"`
	Port string `json:"port"`
}

// Removed answers DELETE /v1/ports/{name}.
type Removed struct {
	Removed []string `json:"removed"`
}

// Count answers the DELETE requests on /v1/fdb.
type Count struct {
	Removed int `json:"removed"`
}

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// An Error carries the HTTP status a Switch error maps to.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// NotFound is a 404: no port or entry by that name.
func NotFound(format string, a ...any) error {
	return &Error{http.StatusNotFound, fmt.Sprintf(format, a...)}
}

// Conflict is a 409: the name or address is taken.
func Conflict(format string, a ...any) error {
	return &Error{http.StatusConflict, fmt.Sprintf(format, a...)}
}

// Invalid is a 400: the request is wrong, e.g. a bad spec.
func Invalid(format string, a ...any) error {
	return &Error{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

// StatusOf is the HTTP status err maps to.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}
