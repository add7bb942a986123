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
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: b, owner: {team: t}}
spec:
  hypothesis: h
  targets: {link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}}
  probes:
    api: {http: {url: http://127.0.0.1:3/}}
    db: {http: {url: http://127.0.0.1:4/}}
  steadyState: [api.status == 200]
  faults: [{plugin: x, target: link, for: 1s}]
  budget:
    abortWhen:
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

func TestBudgetSeesFailedProbes(t *testing.T) {
	b := budget(t, "      - api.status != 200\n")
	_, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{Error: "timed out after 1s"},
	}, nil, time.Now())
	require.True(t, tripped, "a probe that could not observe is harm, and the budget must see it")
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
