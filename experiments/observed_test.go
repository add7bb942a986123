package experiments_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// withPrometheus is withSteady plus a prometheus probe `errors`.
func withPrometheus(lines ...string) string {
	src := withSteady(lines...)
	return strings.Replace(src, "  steadyState:\n",
		"    errors:\n      prometheus: {url: http://127.0.0.1:9090, query: up}\n  steadyState:\n", 1)
}

// TestEmptyAnswerIsNoEvidenceOfHealth: a Prometheus query that returns no
// samples has no value; reading it makes the expression not hold with a
// typed cause, while `errors.empty || ...` accepts emptiness explicitly and
// short-circuits past the missing value.
func TestEmptyAnswerIsNoEvidenceOfHealth(t *testing.T) {
	exp := parseOK(t, withPrometheus(
		`errors.value < 0.01`,
		`errors.empty || errors.value < 0.01`,
		`errors.ok && !errors.empty && errors.value < 0.01`,
		`len(errors.vector) == 0`,
	))
	empty := map[string]experiments.Observation{"errors": experiments.PrometheusObservation{OK: true, Empty: true}}
	_, err := exp.Spec.SteadyState[0].Eval(empty, nil, t0)
	require.ErrorIs(t, err, experiments.ErrFieldNotObserved, "the value of an empty result is not 0")
	require.Contains(t, err.Error(), "errors.value", "the error names the field read")

	held, err := exp.Spec.SteadyState[1].Eval(empty, nil, t0)
	require.NoError(t, err, "empty || ... never reads the value of an empty result")
	require.True(t, held, "emptiness accepted explicitly holds")

	held, err = exp.Spec.SteadyState[2].Eval(empty, nil, t0)
	require.NoError(t, err)
	require.False(t, held)

	held, err = exp.Spec.SteadyState[3].Eval(empty, nil, t0)
	require.NoError(t, err, "an empty vector is an observed vector")
	require.True(t, held)

	full := map[string]experiments.Observation{"errors": experiments.PrometheusObservation{OK: true, Value: 0.5}}
	for i, want := range []bool{false, false, false, true} {
		held, err := exp.Spec.SteadyState[i].Eval(full, nil, t0)
		require.NoError(t, err, exp.Spec.SteadyState[i].Source)
		require.Equal(t, want, held, exp.Spec.SteadyState[i].Source)
	}
}

// TestFailedObservationHasOnlyWhatWasObserved: an observation that could not
// be made has ok, error and the time waited; any other field is missing.
func TestFailedObservationHasOnlyWhatWasObserved(t *testing.T) {
	exp := parseOK(t, withSteady(
		`checkout.status != 200`,
		`checkout.latency > duration("900ms")`,
		`not checkout.ok`,
		`job.exitCode == 0`,
	))
	timedOut := map[string]experiments.Observation{
		"checkout": experiments.HTTPObservation{Error: "timed out after 1s", Latency: time.Second},
		"job":      experiments.ExecObservation{Error: "timed out", ExitCode: -1},
	}
	_, err := exp.Spec.SteadyState[0].Eval(timedOut, nil, t0)
	require.ErrorIs(t, err, experiments.ErrFieldNotObserved, "a timeout has no status")
	held, err := exp.Spec.SteadyState[1].Eval(timedOut, nil, t0)
	require.NoError(t, err, "a timeout has the latency it was waited for")
	require.True(t, held)
	held, err = exp.Spec.SteadyState[2].Eval(timedOut, nil, t0)
	require.NoError(t, err)
	require.True(t, held)
	_, err = exp.Spec.SteadyState[3].Eval(timedOut, nil, t0)
	require.ErrorIs(t, err, experiments.ErrFieldNotObserved, "a command that did not run has no exit code")
}

// TestMissingFieldsKeepTypeChecks: the rewrite of field reads keeps every
// compile-time check (types, unknown fields, durations) as it was.
func TestMissingFieldsKeepTypeChecks(t *testing.T) {
	for _, src := range []string{
		`errors.value < duration("1s")`,
		`errors.valeu < 0.01`,
		`checkout.status == "200"`,
	} {
		probs := problems(t, withPrometheus(src))
		require.NotEmpty(t, probs, src)
	}
	parseOK(t, withPrometheus(`percentile(errors.value, 99, "10s") < 0.5`, `checkout.headers["X"] == "y"`, `checkout.json != nil`))
}

func TestWithWaited(t *testing.T) {
	o := experiments.WithWaited(experiments.HTTPObservation{Error: "timed out", Latency: 3 * time.Millisecond}, time.Second)
	require.Equal(t, time.Second, o.(experiments.HTTPObservation).Latency, "a timeout's latency is the time waited")
	o = experiments.WithWaited(experiments.ExecObservation{Error: "timed out"}, time.Second)
	require.Equal(t, time.Second, o.(experiments.ExecObservation).Duration)
	o = experiments.WithWaited(ok(200, time.Millisecond), time.Second)
	require.Equal(t, time.Millisecond, o.(experiments.HTTPObservation).Latency, "an observation that was made keeps its latency")
}
