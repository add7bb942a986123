package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// hangableService is a real HTTP service that answers 200 until it is told
// to stop answering; from then on every request waits until its client gives
// up (or the test ends).
type hangableService struct {
	addr string
	hung atomic.Bool
}

func startHangableService(t *testing.T) *hangableService {
	t.Helper()
	s := &hangableService{}
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hung.Load() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	// Cleanups run last-registered first: the hung handlers are released
	// before the server waits for them.
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	s.addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// TestDeadServiceAbortsTheRun is issue 9's first item through the real
// binary: with the README's shape of budget (a latency bound below the
// probe's 1 s timeout, or a p99 of the latency), a service that stops
// answering mid-fault aborts the run on its first timed-out observation,
// because a timeout has the latency it was waited for. A budget that reads
// only what a dead service cannot give (its status) is blind, and aborts
// after budget.blindAfter (3) observations in a row.
func TestDeadServiceAbortsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name      string
		abortWhen string
		cause     reports.Cause
		// timeouts is how many timed-out observations the abort takes.
		timeouts int
	}{
		{"latency", `svc.latency > duration("900ms")`, "budget", 1},
		{"percentile", `percentile(svc.latency, 99, "10s") > duration("900ms")`, "budget", 1},
		{"blind", `svc.status >= 500`, "budget-blind", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := startHangableService(t)
			exp := writeDeadServiceExperiment(t, svc.addr, tc.abortWhen)
			stateDir, reportDir := t.TempDir(), t.TempDir()
			run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
			waitInjected(t, run, stateDir)
			svc.hung.Store(true)

			code := run.exitCode(t)
			require.Equalf(t, reports.Aborted.ExitCode(), code, "a dead service aborts the run\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			rec := readRecord(t, reportDir)
			require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
			require.Equal(t, tc.cause, rec.Cause, "the record's cause (reason: %s)", rec.Reason)
			require.Equal(t, "reverted", rec.Faults[0].State)

			abort := events(rec, reports.EventAbort, "budget")
			require.Len(t, abort, 1, "the budget aborted the run")
			timeouts := 0
			for _, e := range events(rec, reports.EventProbe, "svc") {
				if !e.OK && e.At <= abort[0].At {
					timeouts++
					require.Contains(t, e.Message, "timed out after 1s")
					latency, err := time.ParseDuration(fmt.Sprint(e.Values["latency"]))
					require.NoError(t, err)
					require.GreaterOrEqual(t, latency, time.Second, "a timeout has the latency it was waited for, at least the timeout")
				}
			}
			require.Equal(t, tc.timeouts, timeouts, "the abort came on the timed-out observation that decided it, not later")
			requireNothingLeft(t, exp)
		})
	}
}

func writeDeadServiceExperiment(t *testing.T, svc, abortWhen string) *experiments.Experiment {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: dead-service
  owner: {team: e2e-team}
spec:
  hypothesis: The service answers 200 while a link of it is a little slower.
  targets:
    link:
      endpoint: {listen: %q, upstream: %q}
  probes:
    svc:
      http: {url: %q}
      every: 100ms
      timeout: 1s
  steadyState:
    - svc.status == 200
  faults:
    - {plugin: latency, target: link, with: {delay: 1ms}, for: 10m}
  budget:
    abortWhen:
      - %s
  safety:
    maxDuration: 20m
`, freeAddr(t), svc, "http://"+svc+"/", strconv.Quote(abortWhen))
	path := filepath.Join(t.TempDir(), "dead-service.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return exp
}

// TestEmptyPrometheusAnswerIsNoEvidence is issue 9's third item through the
// real binary and a real Prometheus: a query that matches nothing (a
// misspelled metric) has no value, so `errors.value < 0.01` does not hold
// and the run fails before injecting anything, saying why and how to accept
// an empty answer; `errors.empty || errors.value < 0.01` accepts it and the
// run passes.
func TestEmptyPrometheusAnswerIsNoEvidence(t *testing.T) {
	svc := startHangableService(t)
	prom := startPrometheus(t, svc.addr)
	for _, tc := range []struct {
		name, steady string
		verdict      reports.Verdict
	}{
		{"value", "errors.value < 0.01", reports.Failed},
		{"empty-accepted", "errors.empty || errors.value < 0.01", reports.Passed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := writeEmptyQueryExperiment(t, prom.url, svc.addr, tc.steady)
			dir := t.TempDir()
			run := start(t, built.chaos, "run", "--state-dir", t.TempDir(), "--report-dir", dir, exp.File)
			code := run.exitCode(t)
			require.Equalf(t, tc.verdict.ExitCode(), code, "exit code\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			rec := readRecord(t, dir)
			require.Equal(t, tc.verdict, rec.Verdict, rec.Reason)
			if tc.verdict == reports.Failed {
				require.Equal(t, "planned", rec.Faults[0].State, "nothing was injected")
				check := firstBreach(t, rec, reports.Before)
				require.Contains(t, check.Detail, "errors.value was not observed: the query returned no samples")
				require.Contains(t, check.Detail, "errors.empty || …", "the message shows how to accept emptiness explicitly")
			} else {
				require.Positive(t, rec.Faults[0].Observations["errors"], "the query was made while the fault was live")
			}
		})
	}
}

func writeEmptyQueryExperiment(t *testing.T, promURL, svc, steady string) *experiments.Experiment {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: empty-query
  owner: {team: e2e-team}
spec:
  hypothesis: Fewer than 1%% of the answers are errors while a link is a little slower.
  targets:
    link:
      endpoint: {listen: %q, upstream: %q}
  probes:
    errors:
      prometheus:
        url: %q
        query: 'sum(rate(demo_requets_total{code="500"}[1m]))'
      every: 300ms
      timeout: 2s
  steadyState:
    - %s
  faults:
    - {plugin: latency, target: link, with: {delay: 1ms}, for: 2s}
  safety:
    maxDuration: 2m
`, freeAddr(t), svc, promURL, strconv.Quote(steady))
	path := filepath.Join(t.TempDir(), "empty-query.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return exp
}
