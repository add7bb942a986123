package experiments

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// MaxWithBytes bounds a fault's `with`, encoded as the plugin receives it.
// Parameters are settings, not data: the bound keeps every request far under
// what the plugin protocol carries in one message (4 MiB), so a plugin is
// never asked something it cannot even read.
const MaxWithBytes = 256 << 10

// checkWithSize refuses a fault whose parameters are too large to send.
func checkWithSize(c checker, path string, f *Fault) {
	if f == nil || f.With == nil {
		return
	}
	b, err := json.Marshal(f.With)
	if err != nil || len(b) <= MaxWithBytes {
		return
	}
	c.key(path+".with", fmt.Sprintf("with is %d KiB encoded, more than the %d KiB a fault's parameters may be", (len(b)+1023)>>10, MaxWithBytes>>10),
		"parameters are settings, not data: put large content in a file and give the plugin its path")
}

// endpointAddr is a listen or upstream address as far as it can be resolved
// without asking anyone: an IP literal, a wildcard (no host, 0.0.0.0, [::]:
// every local address), or localhost. Other hostnames are judged when the
// proxy dials (it refuses to dial its own listen address).
type endpointAddr struct {
	port     int
	wildcard bool
	ips      []netip.Addr
}

// parseEndpointAddr reads host:port; ok is false for what it cannot judge
// (a malformed address is reported elsewhere; a hostname resolves later).
func parseEndpointAddr(v string) (endpointAddr, bool) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return endpointAddr{}, false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return endpointAddr{}, false
	}
	a := endpointAddr{port: n}
	if strings.EqualFold(host, "localhost") {
		a.ips = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
		return a, true
	}
	if host == "" {
		a.wildcard = true
		return a, true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return endpointAddr{}, false
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() {
		a.wildcard = true
		return a, true
	}
	a.ips = []netip.Addr{ip}
	return a, true
}

// localAddrs tells whether an address is this machine's: loopback,
// unspecified, or an interface's address (looked up once, when needed).
type localAddrs struct {
	looked bool
	ifaces map[netip.Addr]bool
}

func (l *localAddrs) is(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	if !l.looked {
		l.looked = true
		l.ifaces = map[netip.Addr]bool{}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(n.IP); ok {
						l.ifaces[ip.Unmap()] = true
					}
				}
			}
		}
	}
	return l.ifaces[ip]
}

// reaches reports whether a connection to dst would arrive at a listener on
// ln: a wildcard listener takes every local address, and a wildcard
// destination (0.0.0.0) connects to the local host.
func (l *localAddrs) reaches(dst, ln endpointAddr) bool {
	if dst.port != ln.port {
		return false
	}
	switch {
	case ln.wildcard && dst.wildcard:
		return true
	case ln.wildcard:
		for _, ip := range dst.ips {
			if l.is(ip) {
				return true
			}
		}
		return false
	case dst.wildcard:
		for _, ip := range ln.ips {
			if l.is(ip) {
				return true
			}
		}
		return false
	}
	for _, a := range dst.ips {
		for _, b := range ln.ips {
			if a == b {
				return true
			}
		}
	}
	return false
}

// overlaps reports whether two listen addresses would take the same
// connections: one port cannot proxy two targets.
func (l *localAddrs) overlaps(a, b endpointAddr) bool {
	return l.reaches(a, b) || l.reaches(b, a)
}

// endpointNode is one endpoint target whose addresses could be judged.
type endpointNode struct {
	name           string
	path           string
	listen, upstrm endpointAddr
	upOK           bool
}

const wildcardHint = "a wildcard listen (0.0.0.0, [::] or no host) takes every address of this machine on its port, 127.0.0.0/8 and ::1 included"

// checkEndpointGraph refuses what the proxies of the endpoint targets would
// do to each other or to themselves once they stand: a target whose upstream
// reaches its own listen address (a self-loop that a different spelling hides
// from the plain comparison), targets whose listen addresses overlap (the
// second would silently not be faulted), and targets forwarding to each other
// in a cycle. Each is reported with the position of the address to change.
func checkEndpointGraph(c checker, targets map[string]*Target) {
	var nodes []*endpointNode
	for name, t := range targets {
		if t == nil || t.Endpoint == nil {
			continue
		}
		path := "spec.targets." + name + ".endpoint"
		ln, ok := parseEndpointAddr(t.Endpoint.Listen)
		if !ok || c.broken(path) {
			continue
		}
		up, upOK := parseEndpointAddr(t.Endpoint.Upstream)
		nodes = append(nodes, &endpointNode{name: name, path: path, listen: ln, upstrm: up, upOK: upOK})
	}
	// File order: the later of two targets is the one to change.
	sort.Slice(nodes, func(i, j int) bool {
		a, b := c.exp.KeyPosOf(nodes[i].path), c.exp.KeyPosOf(nodes[j].path)
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	var local localAddrs

	for _, n := range nodes {
		ep := targets[n.name].Endpoint
		if n.upOK && ep.Listen != ep.Upstream && local.reaches(n.upstrm, n.listen) {
			hint := "the proxy stands on listen and forwards to upstream: upstream must be the service's own address or port"
			if n.listen.wildcard {
				hint = wildcardHint + "; forward to the service's own address or port"
			}
			c.at(n.path+".upstream", fmt.Sprintf("upstream %s reaches this target's own listen %s: traffic would loop back into the proxy", ep.Upstream, ep.Listen), hint)
		}
	}
	for i, b := range nodes {
		for _, a := range nodes[:i] {
			if local.overlaps(a.listen, b.listen) {
				c.at(b.path+".listen", fmt.Sprintf("listen %s overlaps target %s's listen %s: one port cannot proxy two targets", targets[b.name].Endpoint.Listen, a.name, targets[a.name].Endpoint.Listen),
					"give each target its own listen port; "+wildcardHint)
				break
			}
		}
	}
	reportCycles(c, nodes, targets, &local)
}

// reportCycles finds targets that forward to each other in a cycle of two
// or more (a target into itself is reported above) and reports, for each
// target that is the first in the file of some cycle, its shortest such
// cycle, at that target's upstream. A breadth-first search per target keeps
// the work polynomial however many targets a file has.
func reportCycles(c checker, nodes []*endpointNode, targets map[string]*Target, local *localAddrs) {
	next := make([][]int, len(nodes))
	for i, a := range nodes {
		if !a.upOK {
			continue
		}
		for j, b := range nodes {
			if i != j && local.reaches(a.upstrm, b.listen) {
				next[i] = append(next[i], j)
			}
		}
	}
	for s := range nodes {
		// Only through targets after s, so each cycle is told once, from
		// its first target.
		parent := map[int]int{}
		queue := []int{s}
		end := -1
		for len(queue) > 0 && end < 0 {
			n := queue[0]
			queue = queue[1:]
			for _, m := range next[n] {
				if m == s {
					end = n
					break
				}
				if _, ok := parent[m]; !ok && m > s {
					parent[m] = n
					queue = append(queue, m)
				}
			}
		}
		if end < 0 {
			continue
		}
		var path []string
		for n := end; n != s; n = parent[n] {
			path = append(path, nodes[n].name)
		}
		path = append(path, nodes[s].name)
		for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
			path[i], path[j] = path[j], path[i]
		}
		path = append(path, nodes[s].name)
		c.at(nodes[s].path+".upstream", "targets forward to each other in a loop: "+strings.Join(path, " → "),
			fmt.Sprintf("traffic through %s would come back to it without end; point one upstream at the service itself", targets[nodes[s].name].Endpoint.Listen))
	}
}
