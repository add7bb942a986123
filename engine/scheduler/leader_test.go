package scheduler

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// TestClaimInstantOnce: an instant is claimed once; the second claim of
// the same instant says false, the next instant is free.
func TestClaimInstantOnce(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC)
	ok, err := ClaimInstant(dir, at, "one_1")
	require.NoError(t, err)
	require.True(t, ok, "the first claim wins")
	ok, err = ClaimInstant(dir, at, "two_2")
	require.NoError(t, err)
	require.False(t, ok, "the same instant cannot be claimed again")
	ok, err = ClaimInstant(dir, at.Add(time.Second), "two_2")
	require.NoError(t, err)
	require.True(t, ok, "the next instant is free")
}

// TestClaimedFireRunsOnce: two schedulers (replicas) on one fake clock and
// one claims directory both reach the same fire; exactly one runs it, the
// other skips it as claimed.
func TestClaimedFireRunsOnce(t *testing.T) {
	s := writeSchedule(t, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *"}
`)
	clk := clock.NewFake(time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC))
	claims := t.TempDir()
	fired := make(chan Outcome, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	for _, id := range []string{"one_1", "two_2"} {
		sch := &Scheduler{
			Schedule: s, Clock: clk,
			RunFile: func(context.Context, string, string) *reports.Record {
				return &reports.Record{Verdict: reports.Passed}
			},
			Claims: &Claims{Dir: filepath.Join(claims, "fires"), Identity: id},
			Fired:  func(o Outcome) { fired <- o },
		}
		go func() { done <- sch.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	require.NoError(t, clk.BlockUntil(wait, 2), "both schedulers arm their timers")
	clk.Advance(10 * time.Second)
	a, b := recv(t, fired, "one replica's outcome"), recv(t, fired, "the other's")
	if a.Skip != "" {
		a, b = b, a
	}
	require.Empty(t, a.Skip, "one replica runs the fire")
	require.Len(t, a.Records, 1)
	require.Equal(t, SkipClaimed, b.Skip, "the other skips it as claimed")
	require.Empty(t, b.Records, "and runs nothing")
}
