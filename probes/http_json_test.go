package probes_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/probes"
)

// An http probe observes the parsed JSON body and the headers, and
// expressions read them.
func TestHTTPProbeObservesJSONAndHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Version", "7")
		_, _ = w.Write([]byte(`{"status":"up","checks":{"db":true}}`))
	}))
	t.Cleanup(srv.Close)
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: j, owner: {team: t}}
spec:
  hypothesis: h
  targets: {link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}}
  probes:
    health: {http: {url: "` + srv.URL + `"}}
  steadyState:
    - health.json.status == "up" && health.json.checks.db && health.headers["X-Version"] == "7"
  faults: [{plugin: latency, target: link, with: {delay: 1ms}, for: 3s}]
`
	exp, err := experiments.Parse("j.yaml", []byte(src), experiments.Options{})
	require.NoError(t, err)
	p, err := probes.New("health", exp.Spec.Probes["health"])
	require.NoError(t, err)
	o := p.Probe(t.Context())
	require.True(t, o.Succeeded(), o.Failure())
	held, err := exp.Spec.SteadyState[0].Eval(map[string]experiments.Observation{"health": o}, nil, time.Now())
	require.NoError(t, err)
	require.True(t, held, "the expression reads the parsed body and the headers")
}
