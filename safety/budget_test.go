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
	})
	require.False(t, tripped, "a healthy observation must not trip the budget")

	v, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{OK: true, Status: 503, Latency: 2 * time.Second},
	})
	require.True(t, tripped)
	require.Equal(t, `api.latency > duration("1s")`, v.Condition.Source, "the first condition in file order wins")
	require.Contains(t, v.Values, "api", "the violation carries the values that tripped it")
}

func TestBudgetWaitsForUnobservedProbes(t *testing.T) {
	b := budget(t, "      - db.status != 200\n")
	_, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{OK: true, Status: 200},
	})
	require.False(t, tripped, "a condition on a probe with no observation yet must wait, not trip on zero values")
}

func TestBudgetSeesFailedProbes(t *testing.T) {
	b := budget(t, "      - api.status != 200\n")
	_, tripped := b.Check(map[string]experiments.Observation{
		"api": experiments.HTTPObservation{Error: "timed out after 1s"},
	})
	require.True(t, tripped, "a probe that could not observe is harm, and the budget must see it")
}
