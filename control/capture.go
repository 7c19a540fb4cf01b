package control

import (
	"context"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Link types of captured frames (pcap LINKTYPE_ values).
const (
	LinkTypeEthernet        = 1
	LinkTypeIEEE802154NoFCS = 230
)

// Directions of captured frames, as in pcapng's epb_flags.
const (
	DirInbound  = 1 // received from the port's peer
	DirOutbound = 2 // sent to the port's peer
)

// A CaptureStream is a running capture, as GET /v1/capture streams it.
type CaptureStream interface {
	// Info describes the capture, with its counters.
	Info() CaptureInfo
	// Interfaces lists the ports selected when the capture started, so the
	// stream can announce them before their first frame.
	Interfaces() []CaptureInterface
	// Read waits until at least one packet is there and fills dst. The
	// packets' Data is valid until the next Read. It returns ctx's error
	// when ctx ends first, io.EOF when the capture was stopped.
	Read(ctx context.Context, dst []Packet) (int, error)
	// Close stops the capture.
	Close() error
}

// A CaptureInterface is one port of a capture: an interface of the pcapng
// stream.
type CaptureInterface struct {
	Name     string // the port name
	Kind     string // its kind, the interface description
	LinkType int    // LinkTypeEthernet or LinkTypeIEEE802154NoFCS
}

// A Packet is one captured frame.
type Packet struct {
	CaptureInterface
	Time   time.Time
	Dir    int    // DirInbound or DirOutbound
	Length int    // the frame's length on the wire
	Data   []byte // what was captured of it
}

// CaptureInfo describes a running capture (GET /v1/captures).
type CaptureInfo struct {
	ID     uint64    `json:"id"`
	Port   string    `json:"port"` // a port or listener name, or "all"
	Since  time.Time `json:"since"`
	Frames uint64    `json:"frames"` // frames captured
	Bytes  uint64    `json:"bytes"`
	Drops  uint64    `json:"drops"` // frames lost because the reader fell behind
}

// CaptureHeader carries the capture's ID in the answer to GET /v1/capture,
// to find it in GET /v1/captures.
const CaptureHeader = "Zswitch-Capture-Id"

// ContentTypePcapng is the media type of a capture stream.
const ContentTypePcapng = "application/x-pcapng"

// pcapngWriter writes packets as pcapng: one interface description block
// per port, added as ports appear, and the direction in epb_flags.
type pcapngWriter struct {
	dst    io.Writer
	w      *pcapgo.NgWriter // nil until the first interface is known
	ifaces map[ifaceKey]int
	flags  pcapgo.NgEpbFlags
}

type ifaceKey struct {
	name     string
	linkType int
}

func newPcapngWriter(dst io.Writer) *pcapngWriter {
	return &pcapngWriter{dst: dst, ifaces: map[ifaceKey]int{}}
}

// iface returns the interface index of a port, adding it on first use.
func (pw *pcapngWriter) iface(ci CaptureInterface) (int, error) {
	k := ifaceKey{ci.Name, ci.LinkType}
	if id, ok := pw.ifaces[k]; ok {
		return id, nil
	}
	intf := pcapgo.NgInterface{
		Name:                ci.Name,
		Description:         "zswitch port " + ci.Name + " (" + ci.Kind + ")",
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkType(ci.LinkType),
		TimestampResolution: 9,
	}
	var id int
	var err error
	if pw.w == nil {
		pw.w, err = pcapgo.NewNgWriterInterface(pw.dst, intf, pcapgo.NgWriterOptions{
			SectionInfo: pcapgo.NgSectionInfo{Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "zswitch"},
		})
	} else {
		id, err = pw.w.AddInterface(intf)
	}
	if err != nil {
		return 0, err
	}
	pw.ifaces[k] = id
	return id, nil
}

func (pw *pcapngWriter) write(p *Packet) error {
	id, err := pw.iface(p.CaptureInterface)
	if err != nil {
		return err
	}
	pw.flags.Direction = pcapgo.NgEpbFlag(p.Dir) & pcapgo.NgEpbFlagDirectionMask
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: max(p.Length, len(p.Data)), InterfaceIndex: id}
	return pw.w.WritePacketWithOptions(ci, p.Data, pcapgo.NgPacketOptions{Flags: &pw.flags})
}

func (pw *pcapngWriter) flush() error {
	if pw.w == nil {
		return nil
	}
	return pw.w.Flush()
}
