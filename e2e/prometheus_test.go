package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// errorRatio is the demo front's share of answers other than 200 over the
// last 10 seconds. The window is a little longer than the few seconds
// between the warm-up traffic and the steady-state check of the run, so
// that the check sees the warm-up's answers and not an empty window (0/0,
// NaN).
const errorRatio = `sum(rate(demo_requests_total{tier="front",code!="200"}[10s])) / sum(rate(demo_requests_total{tier="front"}[10s]))`

// TestPrometheusErrorRatioTripsTheBudget is the headline test of the
// prometheus probe, on the real binaries and a real Prometheus: the steady
// state is an error ratio computed by Prometheus from the demo's /metrics;
// it holds before the fault, and the budget aborts the run when a backend
// link slower than the front's timeout turns answers into 504s.
func TestPrometheusErrorRatioTripsTheBudget(t *testing.T) {
	proxy := freeAddr(t)
	// The front's default backend timeout (250ms) is kept: 300ms each way
	// on its backend link is beyond it, and the front answers 504.
	front, backend := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0", "-backend-url", "http://"+proxy)
	prom := startPrometheus(t, front)

	// Warm-up: until chaos stands its proxy, nothing relays the front's
	// calls to its backend, and every answer would be a 502. A relay on the
	// proxy address and some traffic give Prometheus a few seconds of
	// healthy answers, so the ratio is a number (0) rather than NaN when
	// the run checks its steady state.
	relay := startForwarder(t, proxy, backend)
	stopTraffic := traffic("http://"+front+"/health", 100*time.Millisecond)
	var last promResult
	var lastErr error
	healthy := poll(waitLimit, func() bool {
		last, lastErr = prom.query(errorRatio)
		return lastErr == nil && last.finite() && last.value < 0.05
	})
	// Traffic stops before the relay does, so no request of the warm-up
	// meets a closed relay and counts as an error.
	stopTraffic()
	relay.stop()
	require.Truef(t, healthy, "Prometheus computes a healthy error ratio of the demo front once it has traffic; last: %+v, %v", last, lastErr)

	exp := writePrometheusExperiment(t, prom.url, front, backend, proxy)
	dir := t.TempDir()
	run := start(t, built.chaos, "run", "--report-dir", dir, exp.File)
	code := run.exitCode(t)
	require.Equalf(t, reports.Aborted.ExitCode(), code, "the budget aborts the run (exit 2)\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

	rec := readRecord(t, dir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Contains(t, rec.Reason, "errors.value > 0.2", "the reason names the budget condition that tripped")
	require.NotNil(t, rec.TimeToSafety, "a budget abort records the time to safety")
	t.Logf("reason: %s", rec.Reason)

	var before int
	for _, c := range rec.SteadyState {
		if c.Phase != reports.Before {
			continue
		}
		before++
		require.Positivef(t, c.Evaluated, "the steady state was checked before the fault: %s", c.Expression)
		require.Equalf(t, c.Evaluated, c.Held, "the steady state held before the fault (%s: %s)", c.Expression, c.Detail)
	}
	require.Equal(t, len(exp.Spec.SteadyState), before, "every steady-state expression was checked before the fault")
	// The front's own probe sees the 504s first; the error ratio breaks
	// too, before the budget (a higher ratio) trips.
	broke := false
	for _, c := range rec.SteadyState {
		if c.Phase == reports.During && c.Expression == exp.Spec.SteadyState[1].Source {
			broke = c.FirstBreach != nil
		}
	}
	require.True(t, broke, "the error-ratio steady state broke during the fault: %+v", rec.SteadyState)

	// The prometheus probe observed throughout: before the fault and
	// until the abort, every answer was a measurement, not a failure.
	obs := events(rec, reports.EventProbe, "errors")
	require.NotEmpty(t, obs, "the timeline has observations of the prometheus probe")
	// The first observation is the one the steady state was checked on
	// before the fault: it held on a measured ratio, not on emptiness.
	require.Truef(t, obs[0].OK, "the prometheus probe answered before the fault: %s", obs[0].Message)
	require.Equalf(t, false, obs[0].Values["empty"], "before the fault the ratio was measured, not empty: %v", obs[0].Values)
	lastObs := obs[len(obs)-1]
	require.Truef(t, lastObs.OK, "the prometheus probe kept answering during the fault: %s", lastObs.Message)
	require.NotEmpty(t, events(rec, reports.EventAbort, "budget"), "the timeline records the budget's abort")

	require.Len(t, rec.Faults, 1)
	require.Equal(t, "reverted", rec.Faults[0].State, "the latency fault was reverted (error: %s)", rec.Faults[0].Error)
	require.Empty(t, rec.Leftovers, "an aborted run reverts everything it did")
	requireNothingLeft(t, exp)

	// Prometheus is not part of the experiment and is still fine.
	select {
	case <-prom.proc.exited:
		require.FailNowf(t, "prometheus exited during the run", "%v\nstderr:\n%s", prom.proc.err, prom.proc.stderr)
	default:
	}
	require.True(t, prom.ready(), "prometheus is still ready after the run")
	up, err := prom.query(`up{job="demo"}`)
	require.NoError(t, err, "prometheus still answers queries")
	require.Equal(t, 1.0, up.value, "prometheus still scrapes the demo front")
}

// writePrometheusExperiment writes the experiment of the headline test:
// an http probe on the front every 100ms (it is also the traffic), the
// error ratio from Prometheus every second, and 300ms of latency each way
// on the backend link for two minutes, far longer than the test may run,
// so that only the budget can end the run in time.
func writePrometheusExperiment(t *testing.T, promURL, front, backend, proxy string) *experiments.Experiment {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: prometheus-error-ratio
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: Fewer than 5%% of the front's answers are errors while its backend link is 300 ms slower each way.
  targets:
    backend-link:
      endpoint: {listen: %q, upstream: %q}
  probes:
    front:
      http: {url: %q}
      every: 100ms
      timeout: 2s
    errors:
      prometheus:
        url: %q
        query: %q
      every: 1s
      timeout: 2s
  steadyState:
    - front.status == 200
    - errors.ok && (errors.empty || errors.value < 0.05)
  faults:
    - plugin: latency
      target: backend-link
      with: {delay: 300ms}
      for: 2m
  budget:
    abortWhen:
      - errors.value > 0.2
  safety:
    maxDuration: 5m
`, proxy, backend, "http://"+front+"/health", promURL, errorRatio)
	path := filepath.Join(t.TempDir(), "prometheus-error-ratio.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return exp
}
