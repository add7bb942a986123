package safety_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/safety"
)

func TestErrorBudgetSpend(t *testing.T) {
	// 99.9% over 1000s allows 1s of failure; the experiment may spend 50%.
	eb := &experiments.ErrorBudget{SLO: 99.9, Window: experiments.LongDuration(1000 * time.Second), MaxSpend: 50}
	require.Equal(t, 500*time.Millisecond, eb.Allowance())
	start := time.Unix(0, 0)
	s := safety.NewSpend(eb, start)
	ok := experiments.HTTPObservation{OK: true, Status: 200}
	bad := experiments.HTTPObservation{OK: true, Status: 503}
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }

	s.Observe("api", at(100), ok)
	s.Observe("api", at(300), bad) // 200ms of failure
	require.Equal(t, 200*time.Millisecond, s.Spent())
	require.False(t, s.Exhausted())
	s.Observe("web", at(250), bad) // another probe: 250ms; the spend is the larger
	require.Equal(t, 250*time.Millisecond, s.Spent())
	s.Observe("api", at(600), experiments.HTTPObservation{Error: "timed out"}) // +300ms: 500ms
	require.False(t, s.Exhausted(), "spending exactly the allowance is allowed")
	s.Observe("api", at(601), bad)
	require.True(t, s.Exhausted(), "past the allowance the run must stop")
}

func TestErrorBudgetCountsOnlyListedProbes(t *testing.T) {
	eb := &experiments.ErrorBudget{SLO: 99, Window: experiments.LongDuration(100 * time.Second), MaxSpend: 1, Probes: []string{"api"}}
	start := time.Unix(0, 0)
	s := safety.NewSpend(eb, start)
	s.Observe("other", start.Add(time.Hour), experiments.HTTPObservation{Error: "down"})
	require.Zero(t, s.Spent(), "a probe the budget does not list spends nothing")
	require.Nil(t, safety.NewSpend(nil, start), "no error budget, no spend")
	require.False(t, (*safety.Spend)(nil).Exhausted())
}
