package latency

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Resolve implements sdk.Resolver: the proxy's listen address as the
// address it binds, so that two files naming one listener differently
// (localhost:P and 127.0.0.1:P) give one key, endpoint:127.0.0.1:P. A
// wildcard listener (0.0.0.0:P, [::]:P, :P) binds every local address on
// its port: it is one thing, keyed by the wildcard, that covers the key of
// each local address on P, so it collides with a run on any one of them.
// Resolve changes nothing; it only reads the machine's addresses. In
// intercept mode the thing is the traffic to the destination in its
// namespace, in netem mode the interface in its namespace.
func (f *Fault) Resolve(ctx context.Context, req sdk.Request) (sdk.Resolution, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Resolution{}, err
	}
	params, probs := parse(req.Params)
	if probs := checkTarget(req.Target, params.Mode); probs != nil {
		return sdk.Resolution{}, fmt.Errorf("%w: %s", sdk.ErrInvalidParams, probs[0].Message)
	}
	switch {
	case len(probs) > 0 && params.Mode != ModeProxy:
		// A proxy is resolved from its target alone (as before modes);
		// the others need their parameters.
		return sdk.Resolution{}, fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	case params.Mode == ModeIntercept:
		// One thing: the traffic to the destination in that namespace
		// (from the source, if given); two runs on it would stack
		// redirects.
		where := params.Namespace
		name := "traffic to " + params.Destination.String()
		if params.Source.IsValid() {
			name += " from " + params.Source.String()
		}
		return sdk.Resolution{Things: []sdk.Resolved{{Key: "tcp:" + where + "/" + params.Destination.String(), Kind: sdk.KindEndpoint, Name: name + " in " + nsLabel(where)}}}, nil
	case params.Mode == ModeNetem:
		return sdk.Resolution{Things: []sdk.Resolved{{Key: "netdev:" + params.Namespace + "/" + params.Interface, Kind: "interface", Name: "interface " + params.Interface + " in " + nsLabel(params.Namespace)}}}, nil
	}
	listen := req.Target.Endpoint.Listen
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return sdk.Resolution{}, fmt.Errorf("%w: listen %s: %w", sdk.ErrInvalidParams, listen, err)
	}
	ip, err := bindAddr(ctx, host)
	if err != nil {
		return sdk.Resolution{}, fmt.Errorf("resolve listen %s: %w", listen, err)
	}
	key := func(a netip.Addr) string { return "endpoint:" + net.JoinHostPort(a.String(), port) }
	if !ip.IsUnspecified() {
		return sdk.Resolution{Things: []sdk.Resolved{{Key: key(ip), Kind: sdk.KindEndpoint, Name: net.JoinHostPort(ip.String(), port)}}}, nil
	}
	// An IPv4 wildcard binds the IPv4 addresses; an IPv6 one (Go listens
	// dual-stack on "" and "::") binds both families.
	v4only := ip.Is4()
	covers := []string{key(netip.MustParseAddr("127.0.0.1"))}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return sdk.Resolution{}, fmt.Errorf("list local addresses for wildcard listen %s: %w", listen, err)
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		la := pfx.Addr().Unmap()
		if (v4only && !la.Is4()) || la.IsLinkLocalUnicast() || la == netip.MustParseAddr("127.0.0.1") {
			continue
		}
		covers = append(covers, key(la))
	}
	return sdk.Resolution{Things: []sdk.Resolved{{Key: key(ip), Kind: sdk.KindEndpoint, Name: net.JoinHostPort(ip.String(), port) + " (every local address)", Covers: covers}}}, nil
}

// bindAddr is the address a listener on host binds: a literal as it is,
// "" as the IPv6 wildcard (Go listens dual-stack), a name as the first of
// its addresses, IPv4 first, as net.Listen picks it.
func bindAddr(ctx context.Context, host string) (netip.Addr, error) {
	if host == "" {
		return netip.IPv6Unspecified(), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range ips {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("%s has no addresses", host)
	}
	return ips[0], nil
}
