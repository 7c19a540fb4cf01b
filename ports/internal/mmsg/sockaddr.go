package mmsg

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sockaddr returns ap as a raw struct sockaddr_in or sockaddr_in6, for
// NewWriter. An IPv4-mapped IPv6 address becomes sockaddr_in.
func Sockaddr(ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if a.Is4() {
		var sa unix.RawSockaddrInet4
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = a.As4()
		return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)...)
	}
	var sa unix.RawSockaddrInet6
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	sa.Addr = a.As16()
	if z := a.Zone(); z != "" {
		if id, err := strconv.ParseUint(z, 10, 32); err == nil {
			sa.Scope_id = uint32(id)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			sa.Scope_id = uint32(ifi.Index)
		}
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)...)
}

// SockaddrUnix returns path as a raw struct sockaddr_un, for NewWriter. A
// leading '@' names an abstract socket, as in package net.
func SockaddrUnix(path string) ([]byte, error) {
	var sa unix.RawSockaddrUnix
	if len(path) == 0 || len(path) >= len(sa.Path) {
		return nil, fmt.Errorf("unix socket path %q: length %d not in 1..%d", path, len(path), len(sa.Path)-1)
	}
	sa.Family = unix.AF_UNIX
	for i := range len(path) {
		sa.Path[i] = int8(path[i])
	}
	n := int(unsafe.Offsetof(sa.Path)) + len(path)
	if path[0] == '@' {
		sa.Path[0] = 0 // abstract: the length, not a NUL, ends the name
	} else {
		n++ // include the terminating NUL, as the kernel reports it
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), n)...), nil
}

// AddrPort decodes a raw sockaddr_in or sockaddr_in6 (as Reader.Name
// returns), and reports whether it was one.
func AddrPort(raw []byte) (netip.AddrPort, bool) {
	if len(raw) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.NativeEndian.Uint16(raw) {
	case unix.AF_INET:
		if len(raw) < 8 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), binary.BigEndian.Uint16(raw[2:4])), true
	case unix.AF_INET6:
		if len(raw) < 24 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[8:24])), binary.BigEndian.Uint16(raw[2:4])), true
	}
	return netip.AddrPort{}, false
}

// SameInet reports whether two raw inet socket addresses have the same
// family, port and address, ignoring IPv6 flow labels and scope. With
// anyAddr set only family and port are compared, for a sender bound to the
// unspecified address, whose source address the kernel picks per datagram.
// It does not allocate.
func SameInet(a, b []byte, anyAddr bool) bool {
	if len(a) < 4 || len(b) < 4 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3] {
		return false
	}
	if anyAddr {
		return true
	}
	switch binary.NativeEndian.Uint16(a) {
	case unix.AF_INET:
		return len(a) >= 8 && len(b) >= 8 && [4]byte(a[4:8]) == [4]byte(b[4:8])
	case unix.AF_INET6:
		return len(a) >= 24 && len(b) >= 24 && [16]byte(a[8:24]) == [16]byte(b[8:24])
	}
	return false
}

// SetBuffers asks for n-byte receive and send buffers on the socket fd,
// beyond the sysctl limits where the process may (CAP_NET_ADMIN), and within
// them otherwise. It fails silently: the kernel's defaults still work, only
// with less room for bursts.
func SetBuffers(fd, n int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
	}
}
