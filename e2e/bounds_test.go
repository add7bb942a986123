package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// TestEndlessPrometheusAnswerIsCapped runs the real binary against a
// stand-in Prometheus whose answer never ends (it streams samples for as
// long as anyone reads, bounded only by this test's life) and an exec probe
// whose command prints 50 MB. (A command that prints without end is cut the
// same way, engine.TestExecProbeOutputIsCutAndMarked; it then times out, and
// a timed-out observation records only that.) Before the cap, such an answer grew the
// runner by gigabytes in seconds. Now each observation stops at the probe's
// maxResponse: the prometheus observations fail saying so, the budget
// counting them aborts the run, the exec output is cut and marked, and the
// runner's peak memory stays small.
func TestEndlessPrometheusAnswerIsCapped(t *testing.T) {
	tg := startTarget(t)
	var sent atomic.Int64
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		n, err := w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[`))
		sent.Add(int64(n))
		chunk := []byte(strings.Repeat(`{"metric":{"job":"checkout"},"value":[1700000000,"0"]},`, 64))
		for err == nil && r.Context().Err() == nil {
			n, err = w.Write(chunk)
			sent.Add(int64(n))
		}
	}))
	t.Cleanup(prom.Close)

	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: endless-answers
  owner: {team: e2e-team}
spec:
  hypothesis: The front answers 200 while its backend link is 10ms slower.
  targets:
    backend-link:
      endpoint: {listen: %q, upstream: %q}
  probes:
    front:
      http: {url: %q}
      every: 100ms
      timeout: 10s
    errors:
      prometheus: {url: %q, query: 'sum(rate(http_requests_total{code=~"5.."}[1m]))'}
      every: 100ms
      timeout: 10s
      maxResponse: 256KiB
    chatty:
      exec: {command: [sh, -c, "head -c 50000000 /dev/zero"]}
      every: 200ms
      timeout: 10s
      maxResponse: 4KiB
  steadyState:
    - front.status == 200
  faults:
    - {plugin: latency, target: backend-link, with: {delay: 10ms}, after: 200ms, for: 10m}
  budget:
    abortWhen:
      - consecutiveFailures(errors) >= 3
  safety:
    maxDuration: 20m
`, tg.proxy, tg.backend, "http://"+tg.front+"/health", prom.URL)
	path := filepath.Join(t.TempDir(), "endless.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)

	reportDir := t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", t.TempDir(), "--report-dir", reportDir, path)
	code := run.exitCode(t)
	rec := readRecord(t, reportDir)
	require.NotEqual(t, reports.Passed, rec.Verdict, "a run whose probe never got a whole answer is never passed")
	require.Equalf(t, reports.Aborted.ExitCode(), code, "the budget counting the failed observations aborts the run (reason: %s)\nstderr:\n%s", rec.Reason, run.stderr)
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)

	obs := events(rec, reports.EventProbe, "errors")
	require.NotEmpty(t, obs, "the prometheus probe observed")
	for _, e := range obs {
		require.False(t, e.OK, "an answer over the cap is a failed observation")
		require.Contains(t, e.Message, "response larger than 256KiB", "the observation says it hit the cap, not a timeout")
	}
	cut := 0
	for _, e := range events(rec, reports.EventProbe, "chatty") {
		if e.Values["truncated"] == true {
			cut++
		}
	}
	require.Positive(t, cut, "the exec output was cut at its cap, and the record says so: %+v", events(rec, reports.EventProbe, "chatty"))
	md := readFile(t, reportDir, reports.MarkdownFile)
	require.Contains(t, md, "Response caps: `errors` failed", "the report states the cap was hit")
	require.Contains(t, md, "`chatty` had its output cut")

	// Peak resident memory of the runner, from the kernel (kilobytes on
	// Linux). Unbounded, it grew by about 400 MB a second.
	ru, ok := run.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	require.True(t, ok)
	t.Logf("runner peak RSS %d KiB; the stand-in sent %d bytes over %d observations", ru.Maxrss, sent.Load(), len(obs))
	require.Less(t, ru.Maxrss, int64(256<<10), "the runner's peak memory stays far below what an endless answer would take")
	requireNothingLeft(t, exp)
}
