package reports_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

func TestParseWithin(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1d12h": 36 * time.Hour, "2w": 14 * 24 * time.Hour, "90m": 90 * time.Minute,
	} {
		got, err := reports.ParseWithin(in)
		require.NoError(t, err, "%q is a valid --within", in)
		require.Equal(t, want, got, "--within %q", in)
	}
	for _, in := range []string{"", "soon", "0d", "-1h", "7days", "d"} {
		_, err := reports.ParseWithin(in)
		require.ErrorIs(t, err, reports.ErrBadWithin, "%q must be refused", in)
	}
}

func TestGateDecides(t *testing.T) {
	now := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	run := func(name string, daysAgo int, v reports.Verdict) reports.HistoryRecord {
		return reports.HistoryRecord{Path: name + "/" + string(v), Record: &reports.Record{
			Experiment: reports.Experiment{Name: name}, Verdict: v, StartedAt: now.Add(-time.Duration(daysAgo) * 24 * time.Hour),
		}}
	}
	history := []reports.HistoryRecord{
		run("checkout-a", 2, reports.Passed),
		run("checkout-a", 1, reports.Refused), // says nothing about the service
		run("checkout-b", 3, reports.Passed),
		run("checkout-b", 1, reports.Failed), // a later failure outweighs the pass
		run("checkout-c", 9, reports.Passed), // stale
		run("checkout-d", 1, reports.Error),  // nothing tested the service
		run("checkout-e", -1, reports.Passed),
	}
	res := reports.Gate(history, []string{"checkout-*", "search-*"}, 7*24*time.Hour, now)
	require.False(t, res.Open, "the gate is closed while anything required is not fresh")
	got := map[string]reports.GateStatus{}
	for _, it := range res.Items {
		got[it.Experiment+"|"+it.Pattern] = it.Status
	}
	require.Equal(t, map[string]reports.GateStatus{
		"checkout-a|checkout-*": reports.GateFresh,
		"checkout-b|checkout-*": reports.GateFailing,
		"checkout-c|checkout-*": reports.GateStale,
		"checkout-d|checkout-*": reports.GateMissing,
		"|search-*":             reports.GateMissing,
	}, got, "each required experiment's status; a run after the gate's time (checkout-e) is not seen")

	open := reports.Gate(history, []string{"checkout-a"}, 7*24*time.Hour, now)
	require.True(t, open.Open, "a fresh pass, and only a refusal since, opens the gate")
}
