package reports_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

func TestSummarizeFindsTheFirstBreachAndWhatWasLive(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	breach := 3 * time.Second
	rec := &reports.Record{
		StartedAt: start,
		Faults: []reports.Fault{
			{Index: 0, Plugin: "latency", Target: "a", InjectedAt: start.Add(time.Second), RevertedAt: start.Add(2 * time.Second)},
			{Index: 1, Plugin: "latency", Target: "b", InjectedAt: start.Add(2 * time.Second), RevertedAt: start.Add(5 * time.Second)},
		},
		SteadyState: []reports.Check{{Phase: reports.During, Expression: "svc.ok", Evaluated: 4, Held: 3, FirstBreach: &breach, Detail: "observed svc{ok=false}"}},
		Timeline: []reports.Event{
			{At: time.Second, Kind: reports.EventProbe, Source: "svc", OK: true, Values: map[string]any{"latency": "20ms"}},
			{At: 3 * time.Second, Kind: reports.EventProbe, Source: "svc", OK: false, Values: map[string]any{"latency": "10ms"}},
			{At: 3 * time.Second, Kind: reports.EventDeviation, Source: "steadyState"},
		},
	}
	s := reports.Summarize(rec)
	require.NotNil(t, s.FirstBreach, "the check recorded a breach")
	require.Equal(t, "svc.ok", s.FirstBreach.Expression, "a check names the expression, so it is preferred to the event")
	require.Equal(t, breach, s.FirstBreach.At)
	require.Len(t, s.LiveAtFirstBreach, 1, "only the fault not yet reverted at the breach was live")
	require.Equal(t, "b", s.LiveAtFirstBreach[0].Target)
	require.NotNil(t, s.FirstBreak)
	require.Equal(t, reports.EventDeviation, s.FirstBreak.Kind)
	require.Equal(t, []reports.ProbeSummary{{
		Probe: "svc", Observations: 2, Failed: 1, FirstFailure: 3 * time.Second,
		Latencies: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
	}}, s.Probes, "per-probe statistics, latencies sorted")
}
