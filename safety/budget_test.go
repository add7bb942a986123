package safety_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/safety"
)

func budget(t *testing.T, conds string) *safety.Budget {
	t.Helper()
	return budgetWith(t, "", conds, "")
}

// budgetWith is budget with more probes and more of the budget section.
func budgetWith(t *testing.T, probes, conds, more string) *safety.Budget {
	t.Helper()
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: b, owner: {team: t}}
spec:
  hypothesis: h
  targets: {link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}}
  probes:
    api: {http: {url: http://127.0.0.1:3/}}
    db: {http: {url: http://127.0.0.1:4/}}
` + probes + `  steadyState: [api.status == 200]
  faults: [{plugin: x, target: link, for: 3s}]
  budget:
` + more + `    abortWhen:
` + conds
	exp, err := experiments.Parse("b.yaml", []byte(src), experiments.Options{})
	require.NoError(t, err)
	return safety.NewBudget(exp.Spec.Budget)
}

func TestBudgetTripsOnFirstHoldingCondition(t *testing.T) {
	b := budget(t, "      - api.latency > duration(\"1s\")\n      - api.status >= 500\n")
	_, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{OK: true, Status: 200, Latency: time.Millisecond},
	}, nil, time.Now())
	require.False(t, tripped, "a healthy observation must not trip the budget")

	v, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{OK: true, Status: 503, Latency: 2 * time.Second},
	}, nil, time.Now())
	require.True(t, tripped)
	require.Equal(t, `api.latency > duration("1s")`, v.Condition.Source, "the first condition in file order wins")
	require.Contains(t, v.Values, "api", "the violation carries the values that tripped it")
}

func TestBudgetWaitsForUnobservedProbes(t *testing.T) {
	b := budget(t, "      - db.status != 200\n")
	_, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{OK: true, Status: 200},
	}, nil, time.Now())
	require.False(t, tripped, "a condition on a probe with no observation yet must wait, not trip on zero values")
}

// TestBudgetSeesTimeouts: a timeout has the latency it was waited for, so a
// latency condition trips on the first one.
func TestBudgetSeesTimeouts(t *testing.T) {
	b := budget(t, "      - api.latency > duration(\"900ms\")\n")
	v, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{Error: "timed out after 1s", Latency: time.Second},
	}, nil, time.Now())
	require.True(t, tripped, "a probe that waited out its timeout is slow, and the budget must see it")
	require.NoError(t, v.Err, "the condition held: it is not blind")
}

// TestBudgetBlindAborts: a condition whose probe cannot observe (its status
// is not there) does not hold, and after blindAfter new observations in a
// row the budget trips as blind. Observations of other probes are not ticks
// of this condition, and one good observation starts the count again.
func TestBudgetBlindAborts(t *testing.T) {
	b := budget(t, "      - api.status >= 500\n")
	h := experiments.NewHistory(0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	latest := map[string]experiments.Observation{}
	observe := func(probe string, o experiments.Observation) (safety.Violation, bool) {
		now = now.Add(100 * time.Millisecond)
		h.Add(probe, now, o)
		latest[probe] = o
		return b.Check(latest, h, now)
	}
	timeout := experiments.HTTPObservation{Error: "timed out after 1s", Latency: time.Second}
	healthy := experiments.HTTPObservation{OK: true, Status: 200}

	for range 2 {
		_, tripped := observe("api", timeout)
		require.False(t, tripped, "fewer than blindAfter (3) blind observations wait")
	}
	for range 5 {
		_, tripped := observe("db", healthy)
		require.False(t, tripped, "another probe's observations are not ticks of a condition that does not read it")
	}
	_, tripped := observe("api", healthy)
	require.False(t, tripped)
	for range 2 {
		_, tripped = observe("api", timeout)
		require.False(t, tripped, "a good observation starts the count again")
	}
	v, tripped := observe("api", timeout)
	require.True(t, tripped, "three blind observations in a row trip the budget")
	require.ErrorIs(t, v.Err, safety.ErrBudgetBlind)
	require.Equal(t, "api.status >= 500", v.Condition.Source)
	require.Contains(t, v.Err.Error(), "probe api could not observe: timed out after 1s", "the violation says why it was blind")
}

// TestBudgetBlindOnEmptyValue: a Prometheus query that keeps returning no
// samples leaves `errors.value > 0.2` blind.
func TestBudgetBlindOnEmptyValue(t *testing.T) {
	src := "      - errors.value > 0.2\n"
	b := budgetWith(t, "    errors: {prometheus: {url: http://127.0.0.1:9090, query: up}}\n", src, "    blindAfter: 2\n")
	h := experiments.NewHistory(0)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	empty := experiments.PrometheusObservation{OK: true, Empty: true}
	latest := map[string]experiments.Observation{"errors": empty}
	h.Add("errors", now, empty)
	_, tripped := b.Check(latest, h, now)
	require.False(t, tripped)
	h.Add("errors", now.Add(time.Second), empty)
	v, tripped := b.Check(latest, h, now.Add(time.Second))
	require.True(t, tripped, "blindAfter: 2 trips on the second empty answer")
	require.ErrorIs(t, v.Err, safety.ErrBudgetBlind)
	require.Contains(t, v.Err.Error(), "errors.value was not observed: the query returned no samples")
}

func TestBudgetReadsHistory(t *testing.T) {
	b := budget(t, "      - failureRatio(\"api\", \"10s\") > 0.5\n")
	h := experiments.NewHistory(time.Minute)
	now := time.Now()
	latest := map[string]experiments.Observation{}
	for i, status := range []int{200, 503, 503, 200} {
		o := experiments.HTTPObservation{OK: true, Status: status}
		h.Add("api", now.Add(time.Duration(i)*time.Second), o)
		latest["api"] = o
	}
	_, tripped := b.Check(latest, h, now.Add(4*time.Second))
	require.False(t, tripped, "two failures in four is a ratio of 0.5, not above it")
	o := experiments.HTTPObservation{OK: true, Status: 503}
	h.Add("api", now.Add(4*time.Second), o)
	latest["api"] = o
	v, tripped := b.Check(latest, h, now.Add(4*time.Second))
	require.True(t, tripped, "three failures in five trips a 0.5 failure ratio")
	require.Contains(t, v.Condition.Source, "failureRatio")
	require.Contains(t, v.Values, "api", "a condition over history shows what its probe last observed")
}
