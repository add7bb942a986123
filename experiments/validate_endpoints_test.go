package experiments_test

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// minimalWith is testdata/good/minimal.yaml with its target and `with`
// replaced.
func minimalWith(t *testing.T, target, with string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/good/minimal.yaml")
	require.NoError(t, err)
	s := strings.Replace(string(data), "{listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}", target, 1)
	s = strings.Replace(s, "with: {delay: 10ms}", "with: "+with, 1)
	return []byte(s)
}

func problemsIn(t *testing.T, data []byte) []experiments.Problem {
	t.Helper()
	_, err := experiments.Parse("f.yaml", data, badOptions)
	if err == nil {
		return nil
	}
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	return fe.Problems
}

// TestWithTooLarge: a `with` past MaxWithBytes is refused at validation,
// at its key, with the limit in the message, before any plugin is asked.
func TestWithTooLarge(t *testing.T) {
	big := strings.Repeat("x", experiments.MaxWithBytes)
	probs := problemsIn(t, minimalWith(t, "{listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}", "{delay: 10ms, note: "+big+"}"))
	require.Len(t, probs, 1, "one problem: the size of with")
	p := probs[0]
	require.Equal(t, "spec.faults[0].with", p.Path)
	require.Equal(t, 10, p.Pos.Line, "the position is that of with")
	require.Contains(t, p.Message, "256 KiB", "the message gives the limit")

	require.Empty(t, problemsIn(t, minimalWith(t, "{listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}", "{delay: 10ms, note: "+big[:1000]+"}")),
		"a with under the limit is fine")
}

// TestWildcardListenCoversInterfaceAddresses: a wildcard listen takes the
// machine's own interface addresses, not only loopback.
func TestWildcardListenCoversInterfaceAddresses(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	var ip netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && !x.IsLoopback() && x.Unmap().Is4() {
				ip = x.Unmap()
				break
			}
		}
	}
	if !ip.IsValid() {
		t.Skip("this machine has no IPv4 address besides loopback")
	}
	probs := problemsIn(t, minimalWith(t, "{listen: '0.0.0.0:18080', upstream: '"+ip.String()+":18080'}", "{delay: 10ms}"))
	require.Len(t, probs, 1)
	require.Equal(t, "spec.targets.link.endpoint.upstream", probs[0].Path, "the upstream is the address to change")

	require.Empty(t, problemsIn(t, minimalWith(t, "{listen: '"+ip.String()+":18080', upstream: '127.0.0.1:18080'}", "{delay: 10ms}")),
		"a listen on one address does not take another address's port")
}
