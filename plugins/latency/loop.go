package latency

import (
	"errors"
	"net"
	"net/netip"
)

// Errors of the latency plugin.
var (
	// ErrLoop means the upstream is the proxy's own listen address:
	// forwarding there would connect the proxy to itself without end.
	ErrLoop = errors.New("proxy would forward to itself")
	// ErrListenTaken means another target already has a proxy on the same
	// listen address with a different upstream: one listener cannot
	// forward to two places.
	ErrListenTaken = errors.New("listen address already proxied to another upstream")
)

// coversAddr reports whether a connection to ap would reach the listener
// bound at bound. A wildcard listener (0.0.0.0, [::]) covers every local
// address: loopback, the machine's interface addresses, and the
// unspecified address (which Linux connects to the local host).
func coversAddr(bound net.Addr, ap netip.AddrPort) bool {
	tcp, ok := bound.(*net.TCPAddr)
	if !ok || int(ap.Port()) != tcp.Port {
		return false
	}
	lip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	lip, ip := lip.Unmap(), ap.Addr().Unmap()
	switch {
	case lip.IsUnspecified():
		return isLocal(ip)
	case ip.IsUnspecified():
		return isLocal(lip)
	default:
		return ip == lip
	}
}

// isLocal reports whether ip is an address of this machine.
func isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if la, ok := netip.AddrFromSlice(n.IP); ok && la.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
