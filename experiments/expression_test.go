package experiments_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// withSteady is a valid file with an http probe `checkout` (every 1s), a tcp
// probe `db` and an exec probe `job`, and the given steady-state lines; the
// first of them is on line 16.
func withSteady(lines ...string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: chaos/v1
kind: Experiment
metadata: {name: x, owner: {team: t}}
spec:
  hypothesis: h
  targets: {link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}}
  probes:
    checkout:
      http: {url: http://127.0.0.1:3/}
      every: 1s
    db:
      tcp: {address: 127.0.0.1:5432}
    job:
      exec: {command: [/bin/true]}
  steadyState:
`)
	for _, l := range lines {
		b.WriteString("    - " + l + "\n")
	}
	b.WriteString("  faults: [{plugin: latency, target: link, with: {delay: 1ms}, for: 3s}]\n")
	return b.String()
}

func parseOK(t *testing.T, src string) *experiments.Experiment {
	t.Helper()
	exp, err := experiments.Parse("x.yaml", []byte(src), plugins)
	require.NoError(t, err)
	return exp
}

func problems(t *testing.T, src string) []experiments.Problem {
	t.Helper()
	_, err := experiments.Parse("x.yaml", []byte(src), plugins)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe, "the file must be invalid")
	return fe.Problems
}

// TestDurationComparedWithNumber: latency < 300 is almost always meant as
// milliseconds and is always a mistake; it is refused at validation, at the
// operator, with the fix.
func TestDurationComparedWithNumber(t *testing.T) {
	for _, src := range []string{"checkout.latency < 300", "db.latency > 1.5", "300 > checkout.latency"} {
		probs := problems(t, withSteady(src))
		require.Len(t, probs, 1, src)
		p := probs[0]
		require.Equal(t, 16, p.Pos.Line)
		op := strings.IndexAny(src, "<>")
		require.Equal(t, 7+op, p.Pos.Col, "%s: the column is that of the operator", src)
		require.Contains(t, p.Message, "time.Duration")
		require.Contains(t, p.Hint, `duration("`)
	}
	require.Equal(t, `a duration compares with a duration: use duration("300ms")`, problems(t, withSteady("checkout.latency < 300"))[0].Hint)
}

func TestTypedEnvironmentPerProbeKind(t *testing.T) {
	parseOK(t, withSteady(
		`checkout.status == 200 && checkout.body contains "ok" && checkout.latency < duration("1s")`,
		`db.ok && db.latency < duration("50ms")`,
		`job.exitCode == 0 && job.stdout startsWith "ready" && job.duration < duration("2s")`,
	))
	p := problems(t, withSteady("db.status == 200"))
	require.Contains(t, p[0].Message, "a tcp observation has no field status")
	require.Equal(t, "fields: ok, error, latency", p[0].Hint)
}

func TestHistoryFunctionsAreCheckedAtValidation(t *testing.T) {
	for _, tc := range []struct{ src, msg string }{
		{`failureRatio("chekout", "30s") < 0.1`, `failureRatio reads probe "chekout", which is not declared`},
		{`failureRatio("checkout", "soon") < 0.1`, `window "soon" is not a positive duration`},
		{`failureRatio("checkout", "100ms") < 0.1`, `window 100ms is shorter than the probe's interval`},
		{`consecutiveFailures(checkout.status) < 3`, `must be a probe's name`},
		{`percentile(checkout.body, 99, "30s") > 1`, `percentile needs a number or a duration`},
		{`percentile(checkout.latncy, 99, "30s") > duration("1s")`, `http observation has no field "latncy"`},
		{`percentile("checkout.latency", 0, "30s") > duration("1s")`, `percentile 0 is not between 0 and 100`},
		{`percentile(checkout.latency, 99, "30s") > 800`, `mismatched types time.Duration and int`},
	} {
		probs := problems(t, withSteady(tc.src))
		require.Len(t, probs, 1, tc.src)
		require.Contains(t, probs[0].Message, tc.msg, tc.src)
		require.Equal(t, 16, probs[0].Pos.Line)
		require.Greater(t, probs[0].Pos.Col, 7, "%s: the position is inside the expression", tc.src)
	}
}

func TestHistoryWindowIsTheLongestUsed(t *testing.T) {
	exp := parseOK(t, withSteady(
		`failureRatio("checkout", "30s") < 0.1`,
		`percentile(db.latency, 90, "2m") < duration("1s")`,
		`consecutiveFailures(job) < 3`,
	))
	require.Equal(t, 2*time.Minute, exp.HistoryWindow())
	require.Equal(t, 2*time.Minute, exp.NewHistory().Keep())
	x := exp.Spec.SteadyState[1]
	require.Equal(t, []string{"db"}, x.HistoryProbes())
	require.Empty(t, x.Probes(), "history functions do not read the latest observation")
	require.Equal(t, 2*time.Minute, x.Window())
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func ok(status int, latency time.Duration) experiments.HTTPObservation {
	return experiments.HTTPObservation{OK: true, Status: status, Latency: latency}
}

func TestEvalHistoryFunctions(t *testing.T) {
	exp := parseOK(t, withSteady(
		`failureRatio(checkout, "10s") <= 0.25`,
		`consecutiveFailures("checkout") < 2`,
		`percentile(checkout.latency, 90, "10s") < duration("100ms")`,
		`percentile("checkout.status", 50, "10s") == 200`,
		`checkout.status == 200 && failureRatio("checkout", "10s") < 0.5`,
	))
	h := exp.NewHistory()
	// 20 s ago: failures outside every window.
	for i := 0; i < 5; i++ {
		h.Add("checkout", t0.Add(-20*time.Second+time.Duration(i)*time.Second), experiments.HTTPObservation{Error: "refused"})
	}
	// In the last 10 s: 8 observations, 2 of them failures (a 503 counts).
	for i := 0; i < 8; i++ {
		o := ok(200, time.Duration(10*(i+1))*time.Millisecond)
		if i == 2 {
			o = ok(503, 5*time.Millisecond)
		}
		if i == 5 {
			// The engine records a timeout with the time it waited.
			o = experiments.HTTPObservation{Error: "timed out", Latency: time.Second}
		}
		h.Add("checkout", t0.Add(-8*time.Second+time.Duration(i)*time.Second), o)
	}
	latest := map[string]experiments.Observation{"checkout": ok(200, 80*time.Millisecond)}
	// The timeout's second is the slowest latency: p90 is above 100ms.
	want := []bool{true, true, false, true, true}
	for i, x := range exp.Spec.SteadyState {
		held, err := x.Eval(latest, h, t0)
		require.NoError(t, err, x.Source)
		require.Equal(t, want[i], held, x.Source)
	}

	ratio, err := h.FailureRatio("checkout", 10*time.Second, t0)
	require.NoError(t, err)
	require.Equal(t, 0.25, ratio, "2 of 8: a 503 and a timeout")
	p90, err := h.Percentile("checkout", "latency", 90, 10*time.Second, t0)
	require.NoError(t, err)
	require.Equal(t, float64(time.Second), p90, "nearest rank of 8 latencies: the timeout counts with the time it was waited for")
	p50, err := h.Percentile("checkout", "status", 50, 10*time.Second, t0)
	require.NoError(t, err)
	require.Equal(t, 200.0, p50, "the timeout has no status: it is left out of a status percentile, not counted as 0")

	// Two failures in a row break consecutiveFailures < 2.
	h.Add("checkout", t0.Add(time.Second), experiments.HTTPObservation{Error: "refused"})
	h.Add("checkout", t0.Add(2*time.Second), ok(500, time.Millisecond))
	require.Equal(t, 2, h.ConsecutiveFailures("checkout"))
	held, err := exp.Spec.SteadyState[1].Eval(latest, h, t0.Add(2*time.Second))
	require.NoError(t, err)
	require.False(t, held)
}

func TestEvalSaysWhenItCannotTell(t *testing.T) {
	exp := parseOK(t, withSteady(`checkout.status == 200`, `failureRatio("checkout", "10s") < 0.1`))
	_, err := exp.Spec.SteadyState[0].Eval(nil, nil, t0)
	require.ErrorIs(t, err, experiments.ErrNoObservation, "no observation is not a verdict")
	_, err = exp.Spec.SteadyState[1].Eval(nil, nil, t0)
	require.ErrorIs(t, err, experiments.ErrNoHistory, "an empty window is not a ratio of zero")
	_, err = exp.Spec.SteadyState[0].Eval(map[string]experiments.Observation{"checkout": experiments.TCPObservation{OK: true}}, nil, t0)
	require.Error(t, err, "an observation of the wrong kind is refused, not misread")
	var x experiments.Expression
	_, err = x.Eval(nil, nil, t0)
	require.ErrorIs(t, err, experiments.ErrNotCompiled)
}

// TestProgramRunsOnLatestObservations keeps the engine's way of running an
// expression (Program against the latest observations) working.
func TestProgramRunsOnLatestObservations(t *testing.T) {
	exp := parseOK(t, withSteady(`checkout.status == 200 && db.ok`))
	x := exp.Spec.SteadyState[0]
	require.Equal(t, []string{"checkout", "db"}, x.Probes())
	env := x.Functions()
	env["checkout"], env["db"] = ok(200, time.Millisecond), experiments.TCPObservation{OK: true}
	out, err := expr.Run(x.Program(), env)
	require.NoError(t, err)
	require.Equal(t, true, out)
}

func TestHistoryForgetsWhatNoWindowReads(t *testing.T) {
	h := experiments.NewHistory(10 * time.Second)
	for i := 0; i < 10_000; i++ {
		h.Add("p", t0.Add(time.Duration(i)*time.Second), ok(200, time.Millisecond))
	}
	now := t0.Add(9_999 * time.Second)
	require.Len(t, h.Window("p", time.Hour, now), 11, "only the last 10 s are kept (both ends included)")
	require.Len(t, h.Window("p", 5*time.Second, now), 5, "a window is (now-window, now]")
	require.Empty(t, h.Window("other", time.Hour, now))
	require.Zero(t, h.ConsecutiveFailures("other"))
}

func TestFailedCountsServiceFailures(t *testing.T) {
	require.True(t, experiments.Failed(experiments.HTTPObservation{Error: "x"}))
	require.True(t, experiments.Failed(ok(503, 0)))
	require.False(t, experiments.Failed(ok(404, 0)), "a 4xx is the client's mistake, as SLOs count it")
	require.True(t, experiments.Failed(experiments.ExecObservation{OK: true, ExitCode: 1}))
	require.False(t, experiments.Failed(experiments.KubernetesObservation{OK: true}))
	require.True(t, experiments.Failed(nil))
}

// ExampleExpression_Eval shows how the engine evaluates an expression that
// reads both the latest observation and the history.
func ExampleExpression_Eval() {
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: example, owner: {team: payments}}
spec:
  hypothesis: checkout stays fast
  targets: {link: {endpoint: {listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}}}
  probes: {checkout: {http: {url: http://127.0.0.1:8080/health}, every: 1s}}
  steadyState:
    - checkout.status == 200 && percentile(checkout.latency, 99, "30s") < duration("300ms")
  faults: [{plugin: latency, target: link, with: {delay: 100ms}, for: 1m}]
`
	exp, err := experiments.Parse("example.yaml", []byte(src), experiments.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	h := exp.NewHistory() // keeps the last 30 s, the longest window used
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var last experiments.Observation
	for i := 0; i < 10; i++ {
		last = experiments.HTTPObservation{OK: true, Status: 200, Latency: time.Duration(100+25*i) * time.Millisecond}
		h.Add("checkout", start.Add(time.Duration(i)*time.Second), last)
	}
	latest := map[string]experiments.Observation{"checkout": last}
	held, err := exp.Spec.SteadyState[0].Eval(latest, h, start.Add(9*time.Second))
	fmt.Println(held, err)
	// Output: false <nil>
}
