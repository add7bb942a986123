package latency_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/chaos-run/chaos/plugins/latency"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

// needRoot skips a test that creates network namespaces and nftables
// rules, saying why.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates a network namespace (ip netns add) and nftables rules in it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2) to create a network namespace")
	}
}

// newNetns creates a network namespace with lo up, removed on cleanup.
func newNetns(t *testing.T) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "chaos-t-" + hex.EncodeToString(b[:])
	out, err := exec.Command("ip", "netns", "add", name).CombinedOutput()
	require.NoError(t, err, "ip netns add %s: %s", name, out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	out, err = exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput()
	require.NoError(t, err, "bring lo up in %s: %s", name, out)
	return name
}

// inNetns runs fn on a thread inside the namespace: sockets it makes stay
// there.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(name)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		fn()
		if err := netns.Set(orig); err != nil {
			done <- err // the thread dies locked
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	require.NoError(t, <-done, "run in network namespace %s", name)
}

// echoIn starts an echo server on 127.0.0.1 in the namespace.
func echoIn(t *testing.T, ns string) string { return echoOn(t, ns, "127.0.0.1") }

// echoOn starts an echo server on ip in the namespace.
func echoOn(t *testing.T, ns, ip string) string {
	t.Helper()
	var ln net.Listener
	inNetns(t, ns, func() {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(ip, "0"))
		require.NoError(t, err)
	})
	s := &server{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				echo(c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

// dialIn connects from inside the namespace, as a client there would.
func dialIn(t *testing.T, ns, addr string) *net.TCPConn {
	t.Helper()
	var c net.Conn
	inNetns(t, ns, func() {
		var err error
		c, err = net.Dial("tcp", addr)
		require.NoError(t, err, "connect to %s in %s", addr, ns)
	})
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(hangGuard)))
	return c.(*net.TCPConn)
}

// heldBack says whether an echo through addr in ns is held back (with an
// hour's delay any wait shows it; no wait can make it fail by being slow).
func heldBack(t *testing.T, ns, addr string) bool {
	c := dialIn(t, ns, addr)
	_, err := c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = io.ReadFull(c, buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	require.NoError(t, err, "the echo must come back or be held back, nothing else")
	require.Equal(t, "ping", string(buf))
	return false
}

var hostTarget = sdk.Target{Name: "box", Kind: sdk.KindHost, Host: &sdk.HostTarget{}}

// TestInterceptConformance runs the sdk conformance suite against intercept
// mode in a network namespace of its own, for IPv4 and for IPv6: an echo
// server inside, nftables rules from the plugin, a client inside that was
// never told about a proxy.
func TestInterceptConformance(t *testing.T) {
	needRoot(t)
	noLeaks(t)
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			ns := newNetns(t)
			dest := echoOn(t, ns, ip)
			params := fmt.Sprintf(`{"mode":"intercept","delay":"1h","destination":%q,"namespace":%q}`, dest, ns)
			sdktest.Run(t, latency.New(), sdktest.Case{
				Request: func(*testing.T) sdk.Request {
					return sdk.Request{RunID: "test", Target: hostTarget, Params: json.RawMessage(params)}
				},
				Invalid: map[string]sdk.Request{
					"no destination":             {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s"}`)},
					"destination no port":        {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1"}`)},
					"destination port 0":         {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:0"}`)},
					"ipv6 not in brackets":       {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"fd00::1:80"}`)},
					"source of the other family": {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"[fd00::1]:80","source":"10.0.0.1"}`)},
					"no such namespace":          {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:80","namespace":"chaos-no-such-ns"}`)},
					"endpoint target":            {Target: endpoint("127.0.0.1:1", "127.0.0.1:2"), Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:80"}`)},
					"netem-only parameter":       {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:80","loss":5}`)},
					"share 0":                    {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:80","share":0}`)},
					"bad direction":              {Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"1s","destination":"10.0.0.1:80","direction":"up"}`)},
				},
				Fresh: func() sdk.Fault { return latency.New() },
				Check: func(t *testing.T, active bool) {
					require.Equal(t, active, heldBack(t, ns, dest), "intercept in effect must hold the echo back, and only then (active=%v)", active)
				},
			})
		})
	}
}

// TestNetemConformance runs the conformance suite for netem mode where the
// kernel has netem; where it does not, validation must say so plainly.
func TestNetemConformance(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	dest := echoIn(t, ns)
	f := latency.New()
	req := sdk.Request{Target: hostTarget, Params: json.RawMessage(fmt.Sprintf(`{"mode":"netem","delay":"1h","interface":"lo","namespace":%q}`, ns))}
	probs := f.Validate(t.Context(), req)
	if len(probs) > 0 {
		require.Len(t, probs, 1, "only the kernel can be wrong with this request: %v", probs)
		require.Equal(t, "with.mode", probs[0].Param)
		require.Contains(t, probs[0].Message, "use mode: intercept", "a kernel without netem must be named, with the way out")
		t.Skipf("netem: this kernel cannot add a netem qdisc, so the suite cannot run here (validation says: %s)", probs[0].Message)
	}
	sdktest.Run(t, f, sdktest.Case{
		Request: func(*testing.T) sdk.Request { return req },
		Invalid: map[string]sdk.Request{
			"no interface":         {Target: hostTarget, Params: json.RawMessage(`{"mode":"netem","delay":"1s"}`)},
			"loss past 100":        {Target: hostTarget, Params: json.RawMessage(`{"mode":"netem","delay":"1s","interface":"lo","loss":101}`)},
			"share is not netem's": {Target: hostTarget, Params: json.RawMessage(`{"mode":"netem","delay":"1s","interface":"lo","share":50}`)},
		},
		Fresh: func() sdk.Fault { return latency.New() },
		Check: func(t *testing.T, active bool) {
			require.Equal(t, active, heldBack(t, ns, dest), "netem in effect must hold the echo back (active=%v)", active)
		},
	})
}

// TestNetemRefusedWithoutNetem: on a kernel without netem, the request is
// invalid with the reason and the way out, and an inject is refused, not
// broken.
func TestNetemRefusedWithoutNetem(t *testing.T) {
	needRoot(t)
	f := latency.New()
	req := sdk.Request{Target: hostTarget, Params: json.RawMessage(`{"mode":"netem","delay":"10ms","interface":"lo"}`)}
	probs := f.Validate(t.Context(), req)
	if len(probs) == 0 {
		t.Skip("this kernel has netem: nothing to refuse")
	}
	require.Equal(t, "with.mode", probs[0].Param)
	require.Contains(t, probs[0].Message, "netem")
	_, err := f.Inject(t.Context(), req)
	require.ErrorIs(t, err, sdk.ErrRefused, "a kernel without netem is the environment saying no")
	require.ErrorIs(t, err, latency.ErrNoNetem)
}

// TestInterceptLeftTableRevertedByID: a table a dead plugin left (the
// plugin's memory is gone) redirects into nothing; a fresh plugin deletes it
// by the injection's id alone, and traffic flows again.
func TestInterceptLeftTableRevertedByID(t *testing.T) {
	needRoot(t)
	ns := newNetns(t)
	dest := echoIn(t, ns)
	first := latency.New()
	id := t.Name() + "/fault-1"
	req := sdk.Request{ID: id, Target: hostTarget, Params: json.RawMessage(fmt.Sprintf(`{"mode":"intercept","delay":"1h","destination":%q,"namespace":%q}`, dest, ns))}
	_, err := first.Inject(t.Context(), req)
	require.NoError(t, err)
	require.True(t, heldBack(t, ns, dest))
	fresh := latency.New()
	was, err := fresh.RevertByID(context.WithoutCancel(t.Context()), id)
	require.NoError(t, err)
	require.True(t, was, "the fresh plugin must find the table by the id")
	require.False(t, heldBack(t, ns, dest), "traffic must flow directly again")
	was, err = fresh.RevertByID(t.Context(), id)
	require.NoError(t, err)
	require.False(t, was, "a second revert finds nothing")
	_, err = first.RevertByID(t.Context(), id) // drains the first's proxy
	require.NoError(t, err)
}

// TestInterceptParamsBelongToTheirMode: a parameter of another mode is
// named, with the mode it belongs to.
func TestInterceptParamsBelongToTheirMode(t *testing.T) {
	f := latency.New()
	probs := f.Validate(t.Context(), sdk.Request{Target: endpoint("127.0.0.1:1", "127.0.0.1:2"), Params: json.RawMessage(`{"delay":"1s","destination":"10.0.0.1:80"}`)})
	require.Len(t, probs, 1)
	require.Equal(t, "with.destination", probs[0].Param)
	require.True(t, strings.Contains(probs[0].Message, "mode intercept"), "the message names the mode the parameter belongs to: %s", probs[0].Message)
}

// TestInterceptRefusedWithoutPrivilege: without CAP_NET_ADMIN, preparing an
// intercept fault is refused (the run is refused before anything is
// touched), saying what is missing. Run as a user other than root (the
// suite as root skips it: root has the capability).
func TestInterceptRefusedWithoutPrivilege(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as a user without CAP_NET_ADMIN; root has it")
	}
	_, err := latency.New().Prepare(t.Context(), sdk.Request{Target: hostTarget, Params: json.RawMessage(`{"mode":"intercept","delay":"10ms","destination":"127.0.0.1:9"}`)})
	require.ErrorIs(t, err, sdk.ErrRefused, "no privilege is the environment saying no")
	require.ErrorIs(t, err, syscall.EPERM)
}

// echoOnce writes msg on c and says whether it came back whole.
func echoOnce(t *testing.T, c *net.TCPConn, msg string) error {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echoed %q, not %q", buf, msg)
	}
	return nil
}

// TestInterceptLeavesOpenConnectionsAndSaysSo: a connection open before the
// rules go in keeps its direct path (it is neither delayed nor broken), a
// new one is held back, and after the revert the plugin says what the fault
// did: how much it delayed, and that one connection was already open and
// was not delayed.
func TestInterceptLeavesOpenConnectionsAndSaysSo(t *testing.T) {
	needRoot(t)
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			ns := newNetns(t)
			dest := echoOn(t, ns, ip)
			old := dialIn(t, ns, dest)
			require.NoError(t, echoOnce(t, old, "before"))

			f := latency.New()
			params := fmt.Sprintf(`{"mode":"intercept","delay":"50ms","destination":%q,"namespace":%q}`, dest, ns)
			h, err := f.Inject(t.Context(), sdk.Request{ID: t.Name(), Target: hostTarget, Params: json.RawMessage(params)})
			require.NoError(t, err)
			require.NoError(t, echoOnce(t, old, "during"), "a connection open before the rules keeps working")
			fresh := dialIn(t, ns, dest)
			require.NoError(t, echoOnce(t, fresh, "new"), "a new connection rides the proxy")
			was, err := f.Revert(t.Context(), h)
			require.NoError(t, err)
			require.True(t, was)
			require.NoError(t, echoOnce(t, old, "after"), "the open connection still works after the revert")

			st, err := f.Status(t.Context(), h)
			require.NoError(t, err)
			require.False(t, st.Active)
			t.Log(st.Detail)
			require.Regexp(t, `^delayed 6 bytes in 2 chunks`, st.Detail, "the new connection's echo was delayed each way")
			require.Contains(t, st.Detail, "1 connection opened during the fault")
			require.Contains(t, st.Detail, "1 connection to "+dest+" was already open and kept its direct path, undelayed")
		})
	}
}
