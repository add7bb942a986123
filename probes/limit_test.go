package probes_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// endlessServer is a real HTTP server that answers with head and then
// writes chunk for as long as the client reads (until the test ends). It
// counts what it wrote.
func endlessServer(t *testing.T, contentType, head, chunk string) (string, *atomic.Int64) {
	t.Helper()
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		n, err := w.Write([]byte(head))
		written.Add(int64(n))
		for err == nil && r.Context().Err() == nil {
			n, err = w.Write([]byte(chunk))
			written.Add(int64(n))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &written
}

// endlessPrometheus poses as a Prometheus whose answer to a query never
// ends: an instant vector that keeps growing.
func endlessPrometheus(t *testing.T) (string, *atomic.Int64) {
	return endlessServer(t, "application/json",
		`{"status":"success","data":{"resultType":"vector","result":[`,
		`{"metric":{"job":"checkout","instance":"10.0.0.1:8080"},"value":[1700000000,"1"]},`)
}

// TestPrometheusProbeStopsAtItsResponseCap: an answer that never ends fails
// the observation with the cap in the reason, after reading about the cap,
// instead of growing the runner until the timeout (or the OOM killer).
func TestPrometheusProbeStopsAtItsResponseCap(t *testing.T) {
	url, written := endlessPrometheus(t)
	pr := newProber(t, fmt.Sprintf(`{prometheus: {url: %q, query: up}, timeout: 20s, maxResponse: 64KiB}`, url))
	o := probeOnce(t, pr, 20*time.Second).(experiments.PrometheusObservation)
	require.False(t, o.OK, "an answer larger than the cap is a failure, never half a result")
	require.Equal(t, "response larger than 64KiB (the probe's maxResponse): response too large", o.Error,
		"the reason names the cap, not a timeout: the probe stopped reading at the cap")
	require.Empty(t, o.Vector, "nothing of a cut answer is kept")
	require.Less(t, written.Load(), int64(64<<20), "the server could not send more than the cap and the socket buffers")
}

// TestPrometheusProbeDefaultCap: without maxResponse the cap is 1MiB.
func TestPrometheusProbeDefaultCap(t *testing.T) {
	url, _ := endlessPrometheus(t)
	o := probeOnce(t, newProber(t, fmt.Sprintf(`{prometheus: {url: %q, query: up}, timeout: 20s}`, url)), 20*time.Second).(experiments.PrometheusObservation)
	require.False(t, o.OK)
	require.Contains(t, o.Error, "response larger than 1MiB", "the default cap is 1MiB")
}

// TestHTTPProbeBodyLargerThanItsCap: a body past maxResponse fails the
// observation and says so; the status is still observed.
func TestHTTPProbeBodyLargerThanItsCap(t *testing.T) {
	url, _ := endlessServer(t, "text/plain", "", strings.Repeat("x", 4096))
	o := probeOnce(t, newProber(t, fmt.Sprintf(`{http: {url: %q}, timeout: 20s, maxResponse: 8KiB}`, url)), 20*time.Second).(experiments.HTTPObservation)
	require.False(t, o.OK, "a body larger than the cap is not observed as if it were whole")
	require.Contains(t, o.Error, "response larger than 8KiB")
	require.Equal(t, http.StatusOK, o.Status, "the status line arrived and is observed")
	require.Empty(t, o.Body)

	fixed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("y", 8<<10)))
	}))
	t.Cleanup(fixed.Close)
	o = probeOnce(t, newProber(t, fmt.Sprintf(`{http: {url: %q}, timeout: 20s, maxResponse: 8KiB}`, fixed.URL)), 20*time.Second).(experiments.HTTPObservation)
	require.True(t, o.OK, "a body of exactly the cap is whole: %s", o.Error)
	require.Len(t, o.Body, 8<<10)
}

// TestExecProbeOutputIsCutAndMarked: a command that prints without end
// keeps at most maxResponse of its output, and the observation says the
// output was cut; a command that prints a lot and exits keeps its exit code.
func TestExecProbeOutputIsCutAndMarked(t *testing.T) {
	o := probeOnce(t, newProber(t, `{exec: {command: ["yes"]}, timeout: 300ms, maxResponse: 4KiB}`), 300*time.Millisecond).(experiments.ExecObservation)
	require.False(t, o.OK, "a command that never ends runs out of time")
	require.True(t, o.Truncated, "the observation says its output was cut")
	require.Len(t, o.Stdout, 4<<10, "the first maxResponse bytes are kept")
	require.Equal(t, true, o.Values()["truncated"], "the record says the output was cut")

	o = probeOnce(t, newProber(t, `{exec: {command: [sh, -c, "head -c 100000 /dev/zero; echo done >&2"]}, timeout: 5s, maxResponse: 4KiB}`), 5*time.Second).(experiments.ExecObservation)
	require.True(t, o.OK, o.Error)
	require.Equal(t, 0, o.ExitCode, "the command was read to its end, so its exit is observed")
	require.True(t, o.Truncated)
	require.Len(t, o.Stdout, 4<<10)
	require.Equal(t, "done\n", o.Stderr, "stderr has its own cap and was not cut")

	o = probeOnce(t, newProber(t, `{exec: {command: [echo, hi]}, timeout: 5s}`), 5*time.Second).(experiments.ExecObservation)
	require.False(t, o.Truncated)
	require.NotContains(t, o.Values(), "truncated", "an output that was not cut adds nothing to the record")
}
