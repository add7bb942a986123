package httpfault_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/examples/plugins/http-fault/httpfault"
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

// get asks url once, without keeping the connection: each check sees the
// proxy as it is now.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	require.NoError(t, err, "the proxy must answer")
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestConformance runs the SDK's conformance suite over real gRPC against
// the plugin in front of a real HTTP server, and judges the fault from
// outside: through the proxy, the answer is the upstream's 200 or the
// fault's 503.
func TestConformance(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)
	listen := freeAddr(t)
	target := sdk.Target{Name: "shop", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: listen, Upstream: upstream.Listener.Addr().String()}}
	params := func(s string) json.RawMessage { return json.RawMessage(s) }

	sdktest.Run(t, httpfault.New(), sdktest.Case{
		Request: func(*testing.T) sdk.Request {
			return sdk.Request{RunID: "test", Target: target, Params: params(`{"status":503}`)}
		},
		Invalid: map[string]sdk.Request{
			"status not an error":   {Target: target, Params: params(`{"status":200}`)},
			"status past 599":       {Target: target, Params: params(`{"status":600}`)},
			"status as text":        {Target: target, Params: params(`{"status":"503"}`)},
			"share zero":            {Target: target, Params: params(`{"share":0}`)},
			"share over one":        {Target: target, Params: params(`{"share":1.5}`)},
			"unknown parameter":     {Target: target, Params: params(`{"stauts":503}`)},
			"not an endpoint":       {Target: sdk.Target{Name: "h", Kind: sdk.KindHost, Host: &sdk.HostTarget{}}, Params: params(`{}`)},
			"endpoint without addr": {Target: sdk.Target{Name: "e", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{}}, Params: params(`{}`)},
		},
		Fresh: func() sdk.Fault { return httpfault.New() },
		Check: func(t *testing.T, active bool) {
			code, body := get(t, "http://"+listen+"/")
			if active {
				require.Equal(t, http.StatusServiceUnavailable, code, "with the fault live every request is answered 503 (share 1)")
				return
			}
			require.Equal(t, http.StatusOK, code, "without the fault the request passes through")
			require.Equal(t, "upstream", body)
		},
	})
}

// TestShareIsExact: a share of 0.25 faults exactly one request in four,
// and the rest reach the upstream.
func TestShareIsExact(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(upstream.Close)
	listen := freeAddr(t)
	f := httpfault.New()
	req := sdk.Request{
		Target: sdk.Target{Name: "shop", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: listen, Upstream: upstream.Listener.Addr().String()}},
		Params: json.RawMessage(`{"status":500,"share":0.25}`),
	}
	h, err := f.Inject(t.Context(), req)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = f.Revert(t.Context(), h) })
	faulted := 0
	for range 40 {
		if code, _ := get(t, "http://"+listen+"/"); code == http.StatusInternalServerError {
			faulted++
		}
	}
	require.Equal(t, 10, faulted, "a quarter of 40 requests is faulted, no more and no less")
}
