package slip

// IP mode: raw IPv4/IPv6 packets in SLIP, as Linux's slip driver, tunslip6
// without -T and Zephyr with CONFIG_SLIP_TAP=n send them. The port stands
// on the Ethernet segment for the device with a MAC of its own: it adds
// and strips Ethernet headers, answers ARP and IPv6 neighbour
// solicitations for the device's addresses, and resolves the next hop of
// the device's packets itself.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/zswitch/zswitch/frame"
	"github.com/zswitch/zswitch/ports"
)

// A Mode says what the SLIP packets of a port carry.
type Mode uint8

const (
	// ModeEthernet: every SLIP packet is an Ethernet frame (Zephyr's
	// default CONFIG_SLIP_TAP=y, tunslip6 -T). The default.
	ModeEthernet Mode = iota
	// ModeIP: every SLIP packet is a raw IPv4 or IPv6 packet (Linux's
	// slip driver, Zephyr with CONFIG_SLIP_TAP=n, tunslip6 without -T).
	ModeIP
)

// String returns "eth" or "ip", as the mode= option of a port spec.
func (m Mode) String() string {
	switch m {
	case ModeEthernet:
		return "eth"
	case ModeIP:
		return "ip"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode parses the mode= option of a port spec: "eth" (or "") or "ip".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "eth":
		return ModeEthernet, nil
	case "ip":
		return ModeIP, nil
	}
	return 0, fmt.Errorf("slip: mode %q is not eth or ip", s)
}

// Limits of IP mode's small tables.
const (
	ethHeaderLen   = 14
	maxLearned     = 8                   // device addresses learned from SLIP; the oldest is forgotten
	maxNeighbours  = 256                 // segment neighbours; the least recently seen is forgotten
	maxPending     = 16                  // device packets waiting for their next hop's MAC
	maxOut         = 64                  // frames the port made (replies, requests, resolved packets) waiting for ReadFrames
	resolveTimeout = 3 * time.Second     // a pending packet whose next hop stays unknown this long is dropped
	resolveRetry   = time.Second         // the least time between two requests for one address
	neighbourStale = 60 * time.Second    // a neighbour not seen this long is asked again, while still used
	etherTypeIPv4  = 0x0800              //
	etherTypeARP   = 0x0806              //
	etherTypeIPv6  = 0x86DD              //
	protoICMPv6    = 58                  //
	icmp6NS        = 135                 // neighbour solicitation
	icmp6NA        = 136                 // neighbour advertisement
	ndMsgLen       = 24                  // NS/NA without options
	ndOptLen       = 8                   // a link-layer address option for Ethernet
	ndLen          = ndMsgLen + ndOptLen // the NS and NA the port sends
	arpLen         = 28                  // ARP for IPv4 over Ethernet
	ipv6HeaderLen  = 40                  //
	ipv4HeaderLen  = 20                  // without options
	naFlagsSolOver = 0x60000000          // NA flags: solicited, override
	naFlagsOver    = 0x20000000          // NA flags: override (unsolicited, to all nodes)
)

var (
	macBroadcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// DeriveMAC returns the locally administered unicast MAC an IP-mode port
// named name uses when Options.MAC is not set: the same name always gives
// the same MAC.
func DeriveMAC(name string) net.HardwareAddr {
	h := sha256.Sum256([]byte("zswitch slip ip " + name))
	mac := net.HardwareAddr(h[:6:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// validate checks the options a constructor cannot fix up.
func (o Options) validate() error {
	switch o.Mode {
	case ModeEthernet:
		if o.MAC != nil || len(o.Addrs) > 0 {
			return fmt.Errorf("MAC and Addrs are for mode ip")
		}
	case ModeIP:
		if o.MAC != nil && (len(o.MAC) != 6 || o.MAC[0]&1 != 0 || [6]byte(o.MAC) == [6]byte{}) {
			return fmt.Errorf("MAC %v is not a unicast Ethernet address", o.MAC)
		}
		for _, a := range o.Addrs {
			if !deviceAddr(a) {
				return fmt.Errorf("address %v cannot be the device's", a)
			}
		}
	default:
		return fmt.Errorf("mode %d is not ModeEthernet or ModeIP", o.Mode)
	}
	return nil
}

// deviceAddr reports whether a can be a device's own (unicast) address.
func deviceAddr(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast():
		return false
	case a.Is4():
		return a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return true
}

// ipLink is an IP-mode port's state. The reading goroutine (SLIP to
// switch: ingress) and the writing one (switch to SLIP: egress) share it
// under mu; both take it once per batch.
type ipLink struct {
	name  string
	log   *slog.Logger
	st    *ports.Stats // the port's: drops of device packets count in it
	mac   [6]byte
	max   int // the longest IP packet: MaxFrame - 14
	clock func() time.Time

	mu         sync.Mutex
	configured []netip.Addr // Options.Addrs
	learned    []netip.Addr // from the sources of the device's packets, oldest first
	neigh      map[netip.Addr]neighbour
	asked      map[netip.Addr]time.Time // last request sent for an address being resolved
	pending    []pendingPacket
	out        [][]byte // whole frames for ReadFrames, in order
	wake       bool     // egress queued frames: ReadFrames must be woken
}

type neighbour struct {
	mac  [6]byte
	seen time.Time
}

// A pendingPacket is a device packet in a buffer with room for the
// Ethernet header in front, waiting for its next hop's MAC.
type pendingPacket struct {
	dst   netip.Addr
	buf   []byte
	since time.Time
}

func newIPLink(name string, st *ports.Stats, opt Options) *ipLink {
	l := &ipLink{
		name:       name,
		st:         st,
		log:        opt.Logger,
		max:        opt.MaxFrame - ethHeaderLen,
		clock:      time.Now,
		configured: make([]netip.Addr, 0, len(opt.Addrs)),
		neigh:      make(map[netip.Addr]neighbour),
		asked:      make(map[netip.Addr]time.Time),
	}
	for _, a := range opt.Addrs {
		l.configured = append(l.configured, a.Unmap())
	}
	if opt.MAC != nil {
		l.mac = [6]byte(opt.MAC)
	} else {
		l.mac = [6]byte(DeriveMAC(name))
	}
	return l
}

// MAC returns the Ethernet address an IP-mode port uses on the switch
// segment, or nil in Ethernet mode.
func (p *Port) MAC() net.HardwareAddr {
	if p.ip == nil {
		return nil
	}
	return net.HardwareAddr(append([]byte(nil), p.ip.mac[:]...))
}

// isDeviceLocked reports whether a is one of the device's addresses,
// configured or learned.
func (l *ipLink) isDeviceLocked(a netip.Addr) bool {
	for _, d := range l.configured {
		if d == a {
			return true
		}
	}
	for _, d := range l.learned {
		if d == a {
			return true
		}
	}
	return false
}

// learnDeviceLocked records src, the source of a packet from the device,
// as one of its addresses.
func (l *ipLink) learnDeviceLocked(src netip.Addr) {
	if !deviceAddr(src) || l.isDeviceLocked(src) {
		return
	}
	if len(l.learned) == maxLearned {
		copy(l.learned, l.learned[1:])
		l.learned = l.learned[:maxLearned-1]
	}
	l.learned = append(l.learned, src)
	delete(l.neigh, src) // whoever had it on the segment, the device has it now
	l.log.Info("device address learned", "port", l.name, "addr", src, "mac", net.HardwareAddr(l.mac[:]).String())
}

// senderLocked is the address the port's ARP requests and neighbour
// solicitations for target speak from: src, the source of the packet that
// needs them, if it is the device's, else any device address of the
// family, else the unspecified address.
func (l *ipLink) senderLocked(src, target netip.Addr) netip.Addr {
	if src.Is4() == target.Is4() && l.isDeviceLocked(src) {
		return src
	}
	for _, list := range [][]netip.Addr{l.configured, l.learned} {
		for _, a := range list {
			if a.Is4() == target.Is4() {
				return a
			}
		}
	}
	if target.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// nextHopLocked returns the MAC a device packet from src to dst goes to.
// For a unicast dst not known (or no longer sure) it asks the segment;
// known is false when the packet must wait for the answer.
func (l *ipLink) nextHopLocked(src, dst netip.Addr, now time.Time) (mac [6]byte, known bool) {
	if dst.Is4() {
		a := dst.As4()
		switch {
		case a == [4]byte{255, 255, 255, 255}:
			return macBroadcast, true
		case a[0]&0xf0 == 0xe0: // 224.0.0.0/4
			return [6]byte{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}, true
		}
	} else if dst.IsMulticast() {
		a := dst.As16()
		return [6]byte{0x33, 0x33, a[12], a[13], a[14], a[15]}, true
	}
	n, ok := l.neigh[dst]
	if !ok {
		l.requestLocked(src, dst, now)
		return mac, false
	}
	if now.Sub(n.seen) > neighbourStale {
		l.requestLocked(src, dst, now) // still use it meanwhile
	}
	return n.mac, true
}

// requestLocked queues an ARP request or a neighbour solicitation for
// target, at most one per resolveRetry.
func (l *ipLink) requestLocked(src, target netip.Addr, now time.Time) {
	if t, ok := l.asked[target]; ok && now.Sub(t) < resolveRetry {
		return
	}
	if !deviceAddr(target) {
		return
	}
	if len(l.asked) >= maxNeighbours {
		for a, t := range l.asked {
			if now.Sub(t) > resolveTimeout {
				delete(l.asked, a)
			}
		}
		if len(l.asked) >= maxNeighbours {
			return
		}
	}
	l.asked[target] = now
	sender := l.senderLocked(src, target)
	if target.Is4() {
		l.queueOutLocked(l.arp(1, macBroadcast, sender, [6]byte{}, target))
	} else {
		l.queueOutLocked(l.neighbourSolicitation(sender, target))
	}
}

// queueOutLocked queues a frame the port made for ReadFrames; it reports
// false, and the caller counts the drop, when the queue is full.
func (l *ipLink) queueOutLocked(b []byte) bool {
	if len(l.out) >= maxOut {
		return false
	}
	l.out = append(l.out, b)
	l.wake = true
	return true
}

// learnNeighbourLocked records that a is at mac on the segment, and sends
// the device packets that waited for it.
func (l *ipLink) learnNeighbourLocked(a netip.Addr, mac [6]byte, now time.Time) {
	a = a.Unmap()
	if !deviceAddr(a) || mac[0]&1 != 0 || mac == l.mac || mac == [6]byte{} || l.isDeviceLocked(a) {
		return
	}
	if _, ok := l.neigh[a]; !ok && len(l.neigh) >= maxNeighbours {
		var oldest netip.Addr
		var t time.Time
		for k, n := range l.neigh {
			if !oldest.IsValid() || n.seen.Before(t) {
				oldest, t = k, n.seen
			}
		}
		delete(l.neigh, oldest)
	}
	l.neigh[a] = neighbour{mac: mac, seen: now}
	delete(l.asked, a)
	if len(l.pending) == 0 {
		return
	}
	k := 0
	var full uint64
	for _, pp := range l.pending {
		if pp.dst != a {
			l.pending[k] = pp
			k++
			continue
		}
		l.header(pp.buf, mac)
		if !l.queueOutLocked(pp.buf) {
			full++
		}
	}
	clear(l.pending[k:])
	l.pending = l.pending[:k]
	if full > 0 {
		l.st.DropIn(ports.DropQueueFull, full)
	}
}

// expireLocked drops device packets whose next hop did not answer in
// resolveTimeout (as filtered: nowhere to send them), and asks again for
// those waiting longer than resolveRetry.
func (l *ipLink) expireLocked(now time.Time) {
	k := 0
	var lost uint64
	for _, pp := range l.pending {
		if now.Sub(pp.since) > resolveTimeout {
			lost++
			continue
		}
		l.pending[k] = pp
		k++
		src, _ := ipAddrs(pp.buf[ethHeaderLen:])
		l.requestLocked(src, pp.dst, now)
	}
	clear(l.pending[k:])
	l.pending = l.pending[:k]
	if lost > 0 {
		l.st.DropIn(ports.DropFiltered, lost)
	}
}

// header writes an Ethernet header to dst from the port into b[:14], for
// the IP packet in b[14:].
func (l *ipLink) header(b []byte, dst [6]byte) {
	copy(b[0:6], dst[:])
	copy(b[6:12], l.mac[:])
	et := uint16(etherTypeIPv4)
	if b[ethHeaderLen]>>4 == 6 {
		et = etherTypeIPv6
	}
	binary.BigEndian.PutUint16(b[12:14], et)
}

// ingress turns the device packets decoded into fs into Ethernet frames,
// in place, moves those ready to go to the front of fs and returns how
// many. The others wait for their next hop's MAC, or are dropped and
// counted: not IPv4 or IPv6 (bad_framing), too long for a frame
// (oversize), no room to wait (queue_full).
func (l *ipLink) ingress(fs []*frame.Frame) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	l.expireLocked(now)
	var bad, oversize, full uint64
	n := 0
	for i, f := range fs {
		pkt, ok := ipPacket(f.Bytes())
		if !ok {
			bad++
			continue
		}
		if len(pkt) > l.max || len(pkt)+ethHeaderLen > f.Cap() {
			oversize++
			continue
		}
		src, dst := ipAddrs(pkt)
		l.learnDeviceLocked(src)
		mac, known := l.nextHopLocked(src, dst, now)
		if !known || len(l.out) > 0 {
			// Wait for the next hop, or behind the frames already queued
			// (packets that waited for theirs), to keep the device's order.
			buf := make([]byte, ethHeaderLen+len(pkt))
			copy(buf[ethHeaderLen:], pkt)
			switch {
			case known:
				l.header(buf, mac)
				if !l.queueOutLocked(buf) {
					full++
				}
			case len(l.pending) < maxPending:
				l.pending = append(l.pending, pendingPacket{dst: dst, buf: buf, since: now})
			default:
				full++
			}
			continue
		}
		b := f.Space()
		copy(b[ethHeaderLen:], pkt) // pkt is b[:len(pkt)]: copy moves it up
		l.header(b, mac)
		f.SetLen(ethHeaderLen + len(pkt))
		fs[n], fs[i] = fs[i], fs[n]
		n++
	}
	if bad > 0 {
		l.st.DropIn(ports.DropBadFraming, bad)
	}
	if oversize > 0 {
		l.st.DropIn(ports.DropOversize, oversize)
	}
	if full > 0 {
		l.st.DropIn(ports.DropQueueFull, full)
	}
	return n
}

// hasOut reports whether frames the port made wait for ReadFrames.
func (l *ipLink) hasOut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.out) > 0
}

// takeWake reports whether egress queued frames since the last call.
func (l *ipLink) takeWake() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.wake
	l.wake = false
	return w
}

// takeOut copies the frames the port made into the slots of fs and
// returns how many it filled.
func (l *ipLink) takeOut(fs []*frame.Frame) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, k := 0, 0
	var oversize uint64
	for ; k < len(l.out) && n < len(fs); k++ {
		if len(l.out[k]) > fs[n].Cap() {
			oversize++
			continue
		}
		fs[n].SetLen(copy(fs[n].Space(), l.out[k]))
		n++
	}
	if k > 0 {
		m := copy(l.out, l.out[k:])
		clear(l.out[m:])
		l.out = l.out[:m]
	}
	if oversize > 0 {
		l.st.DropIn(ports.DropOversize, oversize)
	}
	return n
}

// egress takes the frames the switch sends to the port: it learns the
// segment's neighbours from them, answers ARP requests and neighbour
// solicitations for the device's addresses, and moves to the front of fs
// the IPv4 and IPv6 frames to the port's MAC or to a group, which go to
// the device without their Ethernet header. It returns how many those are
// and counts the others: runt (shorter than a header), oversize (a packet
// longer than MaxFrame-14), filtered (everything else, ARP included).
func (l *ipLink) egress(fs []*frame.Frame) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	l.expireLocked(now)
	var runt, oversize, filtered uint64
	end := 0
	for i, f := range fs {
		b := f.Bytes()
		if len(b) < ethHeaderLen {
			runt++
			continue
		}
		dstMAC, srcMAC := [6]byte(b[0:6]), [6]byte(b[6:12])
		forUs := dstMAC == l.mac || dstMAC[0]&1 != 0
		deliver := false
		var pkt []byte
		if srcMAC[0]&1 == 0 && srcMAC != l.mac {
			switch binary.BigEndian.Uint16(b[12:14]) {
			case etherTypeARP:
				l.arpInLocked(b, forUs, now)
			case etherTypeIPv4, etherTypeIPv6:
				var ok bool
				pkt, ok = ipPacket(b[ethHeaderLen:])
				if !ok || (pkt[0]>>4 == 6) != (binary.BigEndian.Uint16(b[12:14]) == etherTypeIPv6) {
					break
				}
				deliver = forUs
				nd, answered := false, false
				if pkt[0]>>4 == 6 {
					nd, answered = l.ndInLocked(pkt, srcMAC, now)
				}
				if !nd { // ND says itself where its sender is
					src, _ := ipAddrs(pkt)
					l.learnNeighbourLocked(src, srcMAC, now)
				}
				if answered {
					deliver = false // answered for the device
				}
			}
		}
		switch {
		case !deliver:
			filtered++
		case len(pkt) > l.max:
			oversize++
		default:
			fs[end], fs[i] = fs[i], fs[end]
			end++
		}
	}
	if runt > 0 {
		l.st.DropOut(ports.DropRunt, runt)
	}
	if oversize > 0 {
		l.st.DropOut(ports.DropOversize, oversize)
	}
	if filtered > 0 {
		l.st.DropOut(ports.DropFiltered, filtered)
	}
	return end
}

// arpInLocked learns from an ARP packet and answers a request for one of
// the device's addresses.
func (l *ipLink) arpInLocked(b []byte, forUs bool, now time.Time) {
	if len(b) < ethHeaderLen+arpLen {
		return
	}
	a := b[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 || a[4] != 6 || a[5] != 4 {
		return
	}
	op := binary.BigEndian.Uint16(a[6:8])
	sha := [6]byte(a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	tpa := netip.AddrFrom4([4]byte(a[24:28]))
	if !spa.IsUnspecified() {
		l.learnNeighbourLocked(spa, sha, now)
	}
	if op != 1 || !forUs || spa == tpa || sha[0]&1 != 0 || !l.isDeviceLocked(tpa) {
		return
	}
	if !l.queueOutLocked(l.arp(2, sha, tpa, sha, spa)) {
		l.st.DropIn(ports.DropQueueFull, 1)
	}
}

// arp builds an ARP frame from the port (op 1 request, 2 reply), sent to
// ethDst, from spa, for tha/tpa.
func (l *ipLink) arp(op uint16, ethDst [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	b := make([]byte, ethHeaderLen+arpLen)
	copy(b[0:6], ethDst[:])
	copy(b[6:12], l.mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	a := b[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], l.mac[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], t4[:])
	return b
}

// ndInLocked learns from an IPv6 neighbour solicitation or advertisement
// (pkt, in a frame from srcMAC) and answers a solicitation for one of the
// device's addresses. It reports whether pkt was a valid NS or NA, and
// whether it answered.
func (l *ipLink) ndInLocked(pkt []byte, srcMAC [6]byte, now time.Time) (nd, answered bool) {
	if len(pkt) < ipv6HeaderLen+ndMsgLen || pkt[6] != protoICMPv6 || pkt[7] != 255 {
		return false, false
	}
	m := pkt[ipv6HeaderLen:]
	if (m[0] != icmp6NS && m[0] != icmp6NA) || m[1] != 0 {
		return false, false
	}
	src := netip.AddrFrom16([16]byte(pkt[8:24]))
	dst := netip.AddrFrom16([16]byte(pkt[24:40]))
	if icmp6Checksum(src, dst, m) != 0 {
		return false, false
	}
	target := netip.AddrFrom16([16]byte(m[8:24]))
	// The link-layer address option: source (1) in an NS, target (2) in an NA.
	var lla [6]byte
	haveLLA := false
	for o := m[ndMsgLen:]; len(o) >= 8 && o[1] != 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
		if (o[0] == 1 && m[0] == icmp6NS) || (o[0] == 2 && m[0] == icmp6NA) {
			lla, haveLLA = [6]byte(o[2:8]), true
		}
	}
	if m[0] == icmp6NA {
		if !haveLLA {
			lla = srcMAC
		}
		l.learnNeighbourLocked(target, lla, now)
		return true, false
	}
	if !src.IsUnspecified() {
		if !haveLLA {
			lla = srcMAC
		}
		l.learnNeighbourLocked(src, lla, now)
	}
	if !l.isDeviceLocked(target) {
		return true, false
	}
	// RFC 4861 §7.2.4: to the solicitor, solicited; to all nodes, not
	// solicited, when it solicits from :: (duplicate address detection).
	ethDst, ipDst, flags := srcMAC, src, uint32(naFlagsSolOver)
	if haveLLA {
		ethDst = lla
	}
	if src.IsUnspecified() {
		ethDst, ipDst, flags = [6]byte{0x33, 0x33, 0, 0, 0, 1}, allNodes, naFlagsOver
	}
	na := l.nd(ethDst, target, ipDst, icmp6NA, flags, target, 2)
	if !l.queueOutLocked(na) {
		l.st.DropIn(ports.DropQueueFull, 1)
	}
	return true, true
}

// neighbourSolicitation builds the NS the port sends to resolve target,
// from src (a device address), to target's solicited-node group.
func (l *ipLink) neighbourSolicitation(src, target netip.Addr) []byte {
	t := target.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	ethDst := [6]byte{0x33, 0x33, 0xff, t[13], t[14], t[15]}
	optType := byte(1)
	if src.IsUnspecified() {
		optType = 0 // RFC 4861 §4.3: no source link-layer address from ::
	}
	return l.nd(ethDst, src, group, icmp6NS, 0, target, optType)
}

// nd builds an NS or NA frame from the port: IPv6 from src to dst, hop
// limit 255, the ICMPv6 message typ with flags (NA) or reserved zero (NS),
// target, and the port's MAC in a link-layer address option of type
// optType (none if 0).
func (l *ipLink) nd(ethDst [6]byte, src, dst netip.Addr, typ byte, flags uint32, target netip.Addr, optType byte) []byte {
	mlen := ndMsgLen
	if optType != 0 {
		mlen += ndOptLen
	}
	b := make([]byte, ethHeaderLen+ipv6HeaderLen+mlen)
	copy(b[0:6], ethDst[:])
	copy(b[6:12], l.mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethHeaderLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(mlen))
	ip[6], ip[7] = protoICMPv6, 255
	s, d, t := src.As16(), dst.As16(), target.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	m := ip[ipv6HeaderLen:]
	m[0] = typ
	binary.BigEndian.PutUint32(m[4:8], flags)
	copy(m[8:24], t[:])
	if optType != 0 {
		m[24], m[25] = optType, 1
		copy(m[26:32], l.mac[:])
	}
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(src, dst, m))
	return b
}

// icmp6Checksum is the Internet checksum of the IPv6 pseudo-header for an
// ICMPv6 message m from src to dst, and m. Over a message with its
// checksum filled in it is 0 when the checksum is right.
func icmp6Checksum(src, dst netip.Addr, m []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var ph [8]byte
	binary.BigEndian.PutUint32(ph[0:4], uint32(len(m)))
	ph[7] = protoICMPv6
	add(ph[:])
	add(m)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ipPacket returns the IPv4 or IPv6 packet at the start of b, cut to the
// length its header gives (so Ethernet padding goes), and whether b holds
// a whole one.
func ipPacket(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < ipv4HeaderLen {
			return nil, false
		}
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if int(b[0]&0x0f)*4 < ipv4HeaderLen || total < int(b[0]&0x0f)*4 || total > len(b) {
			return nil, false
		}
		return b[:total], true
	case 6:
		if len(b) < ipv6HeaderLen {
			return nil, false
		}
		total := ipv6HeaderLen + int(binary.BigEndian.Uint16(b[4:6]))
		if total > len(b) {
			return nil, false
		}
		return b[:total], true
	}
	return nil, false
}

// ipAddrs returns the source and destination of a packet ipPacket took.
func ipAddrs(pkt []byte) (src, dst netip.Addr) {
	if pkt[0]>>4 == 4 {
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	}
	return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
}

// stripEthernet is what goes into SLIP for a frame egress let through:
// the IP packet, without the Ethernet header and padding.
func stripEthernet(b []byte) []byte {
	pkt, _ := ipPacket(b[ethHeaderLen:])
	return pkt
}

// readIP is ReadFrames for ModeIP: it hands over the frames the port made
// first, then device packets with their Ethernet header, and blocks only
// when it has neither.
func (p *Port) readIP(s *session, fs []*frame.Frame) (int, error) {
	for {
		if n := p.ip.takeOut(fs); n > 0 {
			return n, nil
		}
		k, err := p.readFrom(s, fs)
		if n := p.ip.ingress(fs[:k]); n > 0 || err != nil {
			return n, err
		}
	}
}

// kickReader wakes a ReadFrames blocked on the link when egress queued
// frames for it: an expired read deadline ends the read, and readFrom
// takes it for a wake-up.
func (p *Port) kickReader() {
	if !p.ip.takeWake() {
		return
	}
	if s := p.cur.Load(); s != nil && !s.IsDead() {
		s.Conn.SetReadDeadline(time.Now())
	}
}
