package latency

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Intercept mode: traffic to a destination is redirected by nftables rules
// into a proxy of the plugin, in the namespace where the traffic flows. The
// rules live in the kernel, not in the plugin: they outlive a plugin that is
// killed. So each injection gets one table of its own, named from the
// injection's id (tableName), and anything that knows the id can delete it:
// the revert, a lease that runs out, and a fresh plugin's RevertByID for
// `chaos recover`. A table a dead plugin left redirects into a port nobody
// listens on (connections are refused) until then.

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h), and
// IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h) has the same
// number: the address a redirected connection was going to.
const soOriginalDst = 80

// families are the nftables families a table of this plugin may be in: the
// destination's (an IPv4 one in ip, an IPv6 one in ip6). A revert by id
// does not know which, so it looks in both.
var families = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

// familyOf is the table family for traffic to dest.
func familyOf(dest netip.AddrPort) nftables.TableFamily {
	if dest.Addr().Is4() {
		return nftables.TableFamilyIPv4
	}
	return nftables.TableFamilyIPv6
}

// TCP header flags (the byte at offset 13).
const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// tablePrefix starts the name of every table this plugin writes.
const tablePrefix = "chaos_latency_"

// tableName is the nftables table of the injection id: a function of the id
// alone, so a fresh process finds it.
func tableName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return fmt.Sprintf("%s%x", tablePrefix, sum[:10])
}

// markOf is the packet mark of the proxy's own upstream connections for the
// injection id; the rules let marked packets pass, so the proxy's
// connection to the original destination is not redirected into itself.
func markOf(id string) uint32 {
	sum := sha256.Sum256([]byte("mark:" + id))
	return 0x43000000 | binary.BigEndian.Uint32(sum[:4])&0x00ffffff
}

// interceptRule is what a table redirects.
type interceptRule struct {
	dest   netip.AddrPort
	source netip.Addr // invalid: any source
	mark   uint32
	port   uint16 // the proxy's port
}

// addTable writes the injection's table into namespace ns: a nat chain on
// output (connections made in the namespace) and one on prerouting
// (connections arriving from outside), each redirecting new TCP connections
// to dest, from source if given, not marked as the proxy's own, to the
// proxy's port. One Flush: the table appears whole or not at all.
func addTable(ns, name string, r interceptRule) error {
	c, closeNS, err := nftConn(ns)
	if err != nil {
		return err
	}
	defer closeNS()
	t := c.AddTable(&nftables.Table{Family: familyOf(r.dest), Name: name})
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"output", nftables.ChainHookOutput}, {"prerouting", nftables.ChainHookPrerouting}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeNAT, Hooknum: hook.hook, Priority: nftables.ChainPriorityNATDest})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: redirectExprs(r)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables table %s in %s: %w", name, nsLabel(ns), err)
	}
	return nil
}

func redirectExprs(r interceptRule) []expr.Any {
	// Where the addresses are in the network header, and how long.
	dstOff, srcOff, alen := uint32(16), uint32(12), uint32(4)
	if !r.dest.Addr().Is4() {
		dstOff, srcOff, alen = 24, 8, 16
	}
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syscall.IPPROTO_TCP}},
		// ip daddr / ip6 daddr
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: dstOff, Len: alen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: r.dest.Addr().AsSlice()},
		// tcp dport
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.dest.Port())},
		// tcp flags & (syn|ack) == syn: the opening of a connection, and
		// nothing else. A NAT chain sees the first packet connection
		// tracking has of each connection; in a namespace where nothing
		// tracked connections before these rules, that is a packet in the
		// middle of one already open, which must keep its path: redirected
		// into a proxy that never saw it open, it would be reset.
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpSYN}},
	}
	if r.source.IsValid() {
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: srcOff, Len: alen},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: r.source.AsSlice()})
	}
	return append(ex,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.mark)},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.port)},
		&expr.Redir{RegisterProtoMin: 1},
	)
}

// delTable deletes the table name in namespace ns; found says whether it
// was there. A namespace that is gone holds no table.
func delTable(ns, name string) (found bool, err error) {
	c, closeNS, err := nftConn(ns)
	if errors.Is(err, ErrNoNamespace) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closeNS()
	t, err := findTable(c, ns, name)
	if t == nil || err != nil {
		return false, err
	}
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("delete nftables table %s in %s: %w", name, nsLabel(ns), err)
	}
	return true, nil
}

// hasTable reports whether namespace ns has the table name.
func hasTable(ns, name string) (bool, error) {
	c, closeNS, err := nftConn(ns)
	if err != nil {
		return false, err
	}
	defer closeNS()
	t, err := findTable(c, ns, name)
	return t != nil, err
}

// findTable is the table name of this plugin's families, or nil.
func findTable(c *nftables.Conn, ns, name string) (*nftables.Table, error) {
	for _, fam := range families {
		tables, err := c.ListTablesOfFamily(fam)
		if err != nil {
			return nil, fmt.Errorf("list nftables tables in %s: %w", nsLabel(ns), err)
		}
		for _, t := range tables {
			if t.Name == name {
				return t, nil
			}
		}
	}
	return nil, nil
}

// nftConn is a netlink connection to nftables in namespace ns.
func nftConn(ns string) (*nftables.Conn, func(), error) {
	h, err := openNS(ns)
	if err != nil {
		return nil, nil, err
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		_ = h.Close()
		return nil, nil, fmt.Errorf("open nftables in %s: %w", nsLabel(ns), err)
	}
	return c, func() { _ = h.Close() }, nil
}

// nsRoute sends each redirected connection on to where it was going, from
// inside the namespace, marked so the rules let it pass.
type nsRoute struct {
	ns   string
	mark uint32
}

// Upstream is the connection's original destination (SO_ORIGINAL_DST).
func (r nsRoute) Upstream(c *net.TCPConn) (string, error) {
	return originalDst(c)
}

// Dial connects to addr from inside the namespace with the mark set.
func (r nsRoute) Dial(ctx context.Context, addr string) (*net.TCPConn, error) {
	var conn net.Conn
	err := inNS(r.ns, func() error {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, int(r.mark))
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("mark the proxy's upstream connection (SO_MARK): %w", serr)
			}
			return nil
		}}
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// originalDst is where a redirected connection was going.
func originalDst(c *net.TCPConn) (string, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	v6 := c.LocalAddr().(*net.TCPAddr).IP.To4() == nil
	var dst netip.AddrPort
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		if v6 {
			// struct sockaddr_in6 is the first member of an
			// ip6_mtuinfo, the way to read one through x/sys/unix.
			var info *unix.IPv6MTUInfo
			if info, gerr = unix.GetsockoptIPv6MTUInfo(int(fd), unix.IPPROTO_IPV6, soOriginalDst); gerr == nil {
				// The port is in network order in memory.
				port := binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, info.Addr.Port))
				dst = netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), port)
			}
			return
		}
		// struct sockaddr_in fits the 20 bytes of an ipv6_mreq, the
		// usual way to read it through the syscall package.
		var addr *syscall.IPv6Mreq
		if addr, gerr = syscall.GetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IP, soOriginalDst); gerr == nil {
			b := addr.Multiaddr
			dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), binary.BigEndian.Uint16(b[2:4]))
		}
	}); err != nil {
		return "", err
	}
	if gerr != nil {
		return "", fmt.Errorf("read the original destination (SO_ORIGINAL_DST): %w", gerr)
	}
	return dst.String(), nil
}

// listenIn listens, in namespace ns on a free port, on every address of
// dest's family (a connection of one family is redirected to a listener of
// that family): output redirects arrive on the loopback address, prerouting
// ones on the address of the interface they came in on. A connection that
// did not come through a rule is refused by the proxy (its original
// destination is the proxy).
func listenIn(ns string, dest netip.AddrPort) (net.Listener, error) {
	network, addr := "tcp4", "0.0.0.0:0"
	if !dest.Addr().Is4() {
		network, addr = "tcp6", "[::]:0"
	}
	var ln net.Listener
	err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}
