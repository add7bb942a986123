package latency_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/latency"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestConformance runs the sdk conformance suite against the latency plugin
// in front of a real echo server. The fault is seen from outside: with a one
// hour delay a byte sent through the proxy does not come back, and without
// the fault it does.
func TestConformance(t *testing.T) {
	noLeaks(t)
	upstream := startServer(t, echo)
	listenAddr := freeAddr(t)
	target := sdk.Target{Name: "link", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: listenAddr, Upstream: upstream.addr()}}
	params := func(s string) json.RawMessage { return json.RawMessage(s) }

	sdktest.Run(t, proxyMode{latency.New()}, sdktest.Case{
		Request: func(*testing.T) sdk.Request {
			return sdk.Request{RunID: "test", Target: target, Params: params(`{"delay":"1h"}`)}
		},
		Invalid: map[string]sdk.Request{
			"no delay":             {Target: target, Params: params(`{}`)},
			"bad delay":            {Target: target, Params: params(`{"delay":"soon"}`)},
			"number delay":         {Target: target, Params: params(`{"delay":200}`)},
			"unknown param":        {Target: target, Params: params(`{"delay":"1s","dealy":"1s"}`)},
			"negative jitter":      {Target: target, Params: params(`{"delay":"1s","jitter":"-1s"}`)},
			"huge jitter":          {Target: target, Params: params(`{"delay":"1s","jitter":"1500000h"}`)},
			"delay past 1h":        {Target: target, Params: params(`{"delay":"61m"}`)},
			"no connections":       {Target: target, Params: params(`{"delay":"1s","maxConnections":0}`)},
			"unknown mode":         {Target: target, Params: params(`{"delay":"1s","mode":"tc"}`)},
			"netem on an endpoint": {Target: target, Params: params(`{"delay":"1s","mode":"netem","interface":"lo"}`)},
			"wrong target":         {Target: sdk.Target{Name: "n", Kind: "host"}, Params: params(`{"delay":"1s"}`)},
		},
		Fresh: func() sdk.Fault { return proxyMode{latency.New()} },
		Check: func(t *testing.T, active bool) {
			c := dial(t, listenAddr)
			_, err := c.Write([]byte("ping"))
			require.NoError(t, err)
			buf := make([]byte, 4)
			if active {
				// The delay is an hour: any wait shows the byte held back,
				// and no wait can make this check fail by being slow.
				require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
				_, err := c.Read(buf)
				var ne net.Error
				require.True(t, errors.As(err, &ne) && ne.Timeout(), "with the fault in effect the echo must be held back, got %v", err)
				return
			}
			_, err = c.Read(buf)
			require.NoError(t, err, "without the fault the echo must come back")
			require.Equal(t, "ping", string(buf))
		},
	})
}

// proxyMode is the latency plugin as proxy mode alone sees it: without
// RevertByID. The plugin has that ability for intercept and netem, whose
// faults outlive the process; a proxy-mode fault lives in the process, so a
// fresh process rightly finds nothing for its id (TestProxyFaultByIDInFreshPlugin),
// which the suite would take for a failure of the ability.
type proxyMode struct{ f *latency.Fault }

func (p proxyMode) Describe() sdk.Description { return p.f.Describe() }
func (p proxyMode) Validate(ctx context.Context, r sdk.Request) []sdk.ParamProblem {
	return p.f.Validate(ctx, r)
}
func (p proxyMode) Inject(ctx context.Context, r sdk.Request) (string, error) {
	return p.f.Inject(ctx, r)
}
func (p proxyMode) Revert(ctx context.Context, h string) (bool, error) { return p.f.Revert(ctx, h) }
func (p proxyMode) Prepare(ctx context.Context, r sdk.Request) (string, error) {
	return p.f.Prepare(ctx, r)
}
func (p proxyMode) Resolve(ctx context.Context, r sdk.Request) (sdk.Resolution, error) {
	return p.f.Resolve(ctx, r)
}
func (p proxyMode) Status(ctx context.Context, h string) (sdk.Status, error) {
	return p.f.Status(ctx, h)
}

// TestProxyFaultByIDInFreshPlugin: a fresh plugin asked to revert a proxy
// fault by id finds nothing (the proxy died with the old process) and says
// so without an error, which is what recover closes the entry on.
func TestProxyFaultByIDInFreshPlugin(t *testing.T) {
	was, err := latency.New().RevertByID(t.Context(), "run/fault-1")
	require.NoError(t, err)
	require.False(t, was)
}

// echoLink is a proxy-mode request for a 1 ms delay on a free listen
// address in front of an echo server, and that address.
func echoLink(t *testing.T) (sdk.Request, string) {
	upstream := startServer(t, echo)
	listenAddr := freeAddr(t)
	return sdk.Request{
		Target: sdk.Target{Name: "link", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: listenAddr, Upstream: upstream.addr()}},
		Params: json.RawMessage(`{"delay":"1ms"}`),
	}, listenAddr
}

// TestInjectWithoutPrepareOwnsItsProxy: a fault injected on a target that was
// not prepared stands its own proxy, and its revert takes it down.
func TestInjectWithoutPrepareOwnsItsProxy(t *testing.T) {
	noLeaks(t)
	f := latency.New()
	req, listenAddr := echoLink(t)
	h, err := f.Inject(t.Context(), req)
	require.NoError(t, err)
	c := dial(t, listenAddr)
	_, err = c.Write([]byte("x"))
	require.NoError(t, err)
	_, err = c.Read(make([]byte, 1))
	require.NoError(t, err, "the fault's own proxy must forward traffic")

	was, err := f.Revert(t.Context(), h)
	require.NoError(t, err)
	require.True(t, was)
	_, err = net.Dial("tcp", listenAddr)
	require.Error(t, err, "the revert must close the proxy the fault stood up")
}

// TestProxyFaultSaysWhatItDelayed: after a revert, Status says what the
// fault held back, and says plainly when it held back nothing (no client
// went through the proxy while it was live).
func TestProxyFaultSaysWhatItDelayed(t *testing.T) {
	noLeaks(t)
	f := latency.New()
	req, listenAddr := echoLink(t)
	prep, err := f.Prepare(t.Context(), req)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = f.Revert(context.WithoutCancel(t.Context()), prep) })
	h, err := f.Inject(t.Context(), req)
	require.NoError(t, err)
	c := dial(t, listenAddr)
	_, err = c.Write([]byte("abc"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 3))
	require.NoError(t, err)
	_, err = f.Revert(t.Context(), h)
	require.NoError(t, err)
	st, err := f.Status(t.Context(), h)
	require.NoError(t, err)
	require.False(t, st.Active)
	// How many of the two were late depends on the machine.
	require.Regexp(t, `^delayed 6 bytes in 2 chunks( \([12] released more than 100µs past due\))?; 1 connection opened during the fault$`, st.Detail)

	// A second fault on the same proxy, with no traffic: its own count.
	h2, err := f.Inject(t.Context(), req)
	require.NoError(t, err)
	_, err = f.Revert(t.Context(), h2)
	require.NoError(t, err)
	st, err = f.Status(t.Context(), h2)
	require.NoError(t, err)
	require.Equal(t, "delayed nothing: no bytes crossed the fault while it was live; 0 connections opened during the fault", st.Detail)
}

// TestRevertUnknownHandleAfterRestart: a plugin process that restarted knows
// nothing of the handle; since the proxy died with the old process, there is
// nothing to do and that is not an error.
func TestRevertUnknownHandleAfterRestart(t *testing.T) {
	for _, h := range []string{"delay:127.0.0.1:1:7", "proxy:127.0.0.1:1"} {
		was, err := latency.New().Revert(t.Context(), h)
		require.NoError(t, err, "revert by handle alone must work in a new process")
		require.False(t, was)
	}
}

// TestResolveNamesTheBoundAddress: two names of one listener give one key,
// and a wildcard listener covers the loopback address on its port, so
// locks on the resolved keys collide.
func TestResolveNamesTheBoundAddress(t *testing.T) {
	resolve := func(listen string) sdk.Resolution {
		res, err := latency.New().Resolve(t.Context(), sdk.Request{Target: endpoint(listen, "127.0.0.1:2")})
		require.NoError(t, err, "resolving %s", listen)
		require.Len(t, res.Things, 1, "one proxy is one thing: %s", listen)
		return res
	}
	lo := resolve("127.0.0.1:28090").Things[0]
	require.Equal(t, "endpoint:127.0.0.1:28090", lo.Key)
	require.Equal(t, lo.Key, resolve("localhost:28090").Things[0].Key, "localhost binds the loopback address")
	wild := resolve("0.0.0.0:28090").Things[0]
	require.Equal(t, "endpoint:0.0.0.0:28090", wild.Key)
	require.Contains(t, wild.Covers, lo.Key, "a wildcard listener covers the loopback address on its port")
	require.Contains(t, resolve(":28090").Things[0].Covers, lo.Key, "an empty host is a wildcard too")
	require.NotContains(t, wild.Covers, "endpoint:127.0.0.1:28091", "another port is another thing")
}
