package engine_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/promtest"
	"github.com/chaos-run/chaos/probes"
)

// The admission test asks a real Prometheus (internal/promtest) through a
// real prometheus probe.

func requirePrometheus(t *testing.T) string { return promtest.Require(t) }

func startPromCounters(t *testing.T, ok, failed int64) *promtest.Counters {
	return promtest.StartCounters(t, ok, failed)
}

func startPrometheus(t *testing.T, target string) string { return promtest.Start(t, target) }

// promProber builds a prometheus prober for query against url.
func promProber(t *testing.T, url, query, auth string) probes.Prober {
	t.Helper()
	decl := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata: {name: probe-test, owner: {team: testers}}
spec:
  hypothesis: the probe observes exactly
  targets:
    link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}
  probes:
    p: {prometheus: {url: %s, query: %s%s}, timeout: 5s}
  steadyState: [p.ok]
  faults:
    - {plugin: latency, target: link, for: 3s}
`, strconv.Quote(url), strconv.Quote(query), auth)
	exp, err := experiments.Parse("probe.yaml", []byte(decl), experiments.Options{})
	require.NoError(t, err, "the probe declaration is valid")
	pr, err := probes.New("p", exp.Spec.Probes["p"])
	require.NoError(t, err, "a prometheus probe builds")
	return pr
}

// awaitProm observes pr until cond holds, within promtest.Limit: Prometheus
// scrapes on its own schedule, and only it can say when it has.
func awaitProm(t *testing.T, pr probes.Prober, what string, cond func(experiments.PrometheusObservation) bool) {
	t.Helper()
	deadline := time.Now().Add(promtest.Limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		o, ok := pr.Probe(ctx).(experiments.PrometheusObservation)
		cancel()
		require.True(t, ok, "a prometheus probe observes a PrometheusObservation")
		if cond(o) {
			return
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "Prometheus never showed what the test waits for", "%s; last observation: %+v", what, o)
		}
		<-tick.C
	}
}
