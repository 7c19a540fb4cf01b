package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/zswitch/zswitch/fdb"
)

// maxBody bounds request bodies; every request is a few hundred bytes.
const maxBody = 64 << 10

// Handler serves the API over sw.
func Handler(sw Switch) http.Handler {
	h := &handler{sw: sw}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ports", h.ports)
	mux.HandleFunc("POST /v1/ports", h.addPort)
	mux.HandleFunc("GET /v1/ports/{name...}", h.port)
	mux.HandleFunc("DELETE /v1/ports/{name...}", h.removePort)
	mux.HandleFunc("PATCH /v1/ports/{name...}", h.setOptions)
	mux.HandleFunc("GET /v1/fdb", h.fdb)
	mux.HandleFunc("POST /v1/fdb", h.addStatic)
	mux.HandleFunc("DELETE /v1/fdb", h.flush)
	mux.HandleFunc("DELETE /v1/fdb/{mac}", h.deleteMAC)
	mux.HandleFunc("GET /v1/capture", h.capture)
	mux.HandleFunc("GET /v1/captures", h.captures)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s %s; see GET /v1/ports, /v1/fdb and /v1/captures", r.Method, r.URL.Path))
	})
	return mux
}

type handler struct{ sw Switch }

func (h *handler) ports(w http.ResponseWriter, r *http.Request) {
	ps := h.sw.Ports()
	if ps == nil {
		ps = []PortInfo{}
	}
	writeJSON(w, http.StatusOK, ps)
}

func (h *handler) port(w http.ResponseWriter, r *http.Request) {
	p, err := h.sw.Port(r.PathValue("name"))
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *handler) addPort(w http.ResponseWriter, r *http.Request) {
	var req AddPortRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Spec == "" {
		writeError(w, http.StatusBadRequest, errors.New(`missing "spec": give a port spec like stream-listen:unix:/tmp/vm3.sock`))
		return
	}
	p, err := h.sw.AddPort(req.Spec)
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, p)
}

func (h *handler) setOptions(w http.ResponseWriter, r *http.Request) {
	var req SetOptionsRequest
	if !readJSON(w, r, &req) {
		return
	}
	if len(req.Options) == 0 {
		writeError(w, http.StatusBadRequest, errors.New(`missing "options": give spec keys like {"options": {"vlan": "100", "out.loss": "1%"}}`))
		return
	}
	p, err := h.sw.SetOptions(r.PathValue("name"), req.Options)
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *handler) removePort(w http.ResponseWriter, r *http.Request) {
	names, err := h.sw.RemovePort(r.PathValue("name"))
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, Removed{Removed: names})
}

func (h *handler) fdb(w http.ResponseWriter, r *http.Request) {
	es, err := h.sw.FDB()
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	if es == nil {
		es = []FDBEntry{}
	}
	writeJSON(w, http.StatusOK, es)
}

func (h *handler) addStatic(w http.ResponseWriter, r *http.Request) {
	var req AddStaticRequest
	if !readJSON(w, r, &req) {
		return
	}
	mac, err := fdb.ParseMAC(req.MAC)
	switch {
	case err != nil:
	case mac.IsGroup():
		err = fmt.Errorf("%v is a group address; only unicast MACs can be pinned to a port", mac)
	case req.VLAN > 4094:
		err = fmt.Errorf("vlan %d is outside 0..4094", req.VLAN)
	case req.Port == "":
		err = errors.New(`missing "port": the name of the port to pin the MAC to`)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := h.sw.AddStatic(mac, req.VLAN, req.Port); err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusCreated, FDBEntry{MAC: mac, VLAN: req.VLAN, Port: req.Port, Static: true})
}

func (h *handler) flush(w http.ResponseWriter, r *http.Request) {
	withStatic, err := boolParam(r, "static")
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	n, err := h.sw.FlushFDB(r.URL.Query().Get("port"), withStatic)
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, Count{Removed: n})
}

func (h *handler) deleteMAC(w http.ResponseWriter, r *http.Request) {
	mac, err := fdb.ParseMAC(r.PathValue("mac"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	vlan := -1
	if v := r.URL.Query().Get("vlan"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 4094 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("vlan %q is not a number from 0 to 4094", v))
			return
		}
		vlan = n
	}
	n, err := h.sw.DeleteFDB(mac, vlan)
	if err == nil && n == 0 {
		err = NotFound("%v is not in the MAC table", mac)
		if vlan >= 0 {
			err = NotFound("%v is not in the MAC table in vlan %d", mac, vlan)
		}
	}
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, Count{Removed: n})
}

func boolParam(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", key, v)
	}
	return b, nil
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty body: want a JSON object")
		}
		writeError(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, ErrorBody{Error: err.Error()})
}

// capture streams a capture as pcapng, flushed after every read, until the
// client hangs up or the server shuts down.
func (h *handler) capture(w http.ResponseWriter, r *http.Request) {
	port := r.URL.Query().Get("port")
	if port == "" {
		writeError(w, http.StatusBadRequest, errors.New("missing port=NAME (a port or listener, see GET /v1/ports) or port=all"))
		return
	}
	cs, err := h.sw.Capture(port)
	if err != nil {
		writeError(w, StatusOf(err), err)
		return
	}
	defer cs.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", ContentTypePcapng)
	w.Header().Set(CaptureHeader, strconv.FormatUint(cs.Info().ID, 10))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	pw := newPcapngWriter(w)
	for _, ci := range cs.Interfaces() {
		if _, err := pw.iface(ci); err != nil {
			return
		}
	}
	if pw.flush() != nil || rc.Flush() != nil {
		return
	}
	ps := make([]Packet, 256)
	for {
		n, err := cs.Read(r.Context(), ps)
		if err != nil {
			return // the client hung up, the server is stopping, or the capture was stopped
		}
		for i := range ps[:n] {
			if err := pw.write(&ps[i]); err != nil {
				return
			}
		}
		if pw.flush() != nil || rc.Flush() != nil {
			return
		}
	}
}

func (h *handler) captures(w http.ResponseWriter, r *http.Request) {
	cs := h.sw.Captures()
	if cs == nil {
		cs = []CaptureInfo{}
	}
	writeJSON(w, http.StatusOK, cs)
}
