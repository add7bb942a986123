package experiments_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// An expression that is cheap on one observation and asks for millions of
// elements on another fails on the second with ErrMemoryBudget, rather than
// growing the runner: the engine aborts the run on it.
func TestEvalStopsAtTheMemoryBudget(t *testing.T) {
	exp := parseOK(t, withSteady(`all(1..len(job.stdout), {all(1..len(job.stdout), {# > 0})})`))
	x := exp.Spec.SteadyState[0]

	small := map[string]experiments.Observation{"job": experiments.ExecObservation{OK: true, Stdout: "ok"}}
	held, err := x.Eval(small, nil, t0)
	require.NoError(t, err, "two short ranges are well within the budget")
	require.True(t, held)

	big := map[string]experiments.Observation{"job": experiments.ExecObservation{OK: true, Stdout: strings.Repeat("x", 5000)}}
	_, err = x.Eval(big, nil, t0)
	require.ErrorIs(t, err, experiments.ErrMemoryBudget, "5,000 ranges of 5,000 elements are past the budget")
}
