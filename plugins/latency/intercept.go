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
)

// Intercept mode: traffic to a destination is redirected by nftables rules
// into a proxy of the plugin, in the namespace where the traffic flows. The
// rules live in the kernel, not in the plugin: they outlive a plugin that is
// killed. So each injection gets one table of its own, named from the
// injection's id (tableName), and anything that knows the id can delete it:
// the revert, a lease that runs out, and a fresh plugin's RevertByID for
// `chaos recover`. A table a dead plugin left redirects into a port nobody
// listens on (connections are refused) until then.

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h): the address a
// redirected connection was going to.
const soOriginalDst = 80

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
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: name})
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
	dst := r.dest.Addr().As4()
	ex := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{syscall.IPPROTO_TCP}},
		// ip daddr
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst[:]},
		// tcp dport
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.dest.Port())},
	}
	if r.source.IsValid() {
		src := r.source.As4()
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: src[:]})
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
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, fmt.Errorf("list nftables tables in %s: %w", nsLabel(ns), err)
	}
	for _, t := range tables {
		if t.Name != name {
			continue
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
	return false, nil
}

// hasTable reports whether namespace ns has the table name.
func hasTable(ns, name string) (bool, error) {
	c, closeNS, err := nftConn(ns)
	if err != nil {
		return false, err
	}
	defer closeNS()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, fmt.Errorf("list nftables tables in %s: %w", nsLabel(ns), err)
	}
	for _, t := range tables {
		if t.Name == name {
			return true, nil
		}
	}
	return false, nil
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
		conn, err = d.DialContext(ctx, "tcp4", addr)
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
	var addr *syscall.IPv6Mreq
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		// struct sockaddr_in fits the 20 bytes of an ipv6_mreq, the
		// usual way to read it through the syscall package.
		addr, gerr = syscall.GetsockoptIPv6Mreq(int(fd), syscall.IPPROTO_IP, soOriginalDst)
	}); err != nil {
		return "", err
	}
	if gerr != nil {
		return "", fmt.Errorf("read the original destination (SO_ORIGINAL_DST): %w", gerr)
	}
	b := addr.Multiaddr
	ip := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4])).String(), nil
}

// listenIn listens on every IPv4 address of namespace ns on a free port:
// output redirects arrive on 127.0.0.1, prerouting ones on the address of
// the interface they came in on. A connection that did not come through a
// rule is refused by the proxy (its original destination is the proxy).
func listenIn(ns string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", "0.0.0.0:0")
		return err
	})
	return ln, err
}
