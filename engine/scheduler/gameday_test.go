package scheduler

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

func writeGameDay(t *testing.T) *experiments.GameDay {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"one.yaml", "two.yaml"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte("kind: Experiment\n"), 0o644))
	}
	path := filepath.Join(dir, "day.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: chaos/v1
kind: GameDay
metadata: {name: q3}
spec:
  steps:
    - experiment: one.yaml
    - checkpoint: Dashboards green?
    - experiment: two.yaml
`), 0o644))
	g, err := experiments.LoadGameDay(path)
	require.NoError(t, err)
	return g
}

type gameDayHarness struct {
	clk     *clock.Fake
	started chan string
	release chan struct{}
	causes  chan error
	done    chan error
	results []StepResult
	g       *GameDay
}

func startGameDay(t *testing.T) *gameDayHarness {
	t.Helper()
	h := &gameDayHarness{
		clk:     clock.NewFake(time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC)),
		started: make(chan string, 4), release: make(chan struct{}), causes: make(chan error, 4), done: make(chan error, 1),
	}
	h.g = &GameDay{
		Day: writeGameDay(t), Dir: filepath.Join(t.TempDir(), "gamedays", "q3"), ReportDir: t.TempDir(),
		Notes: []string{"on-call: Ana"}, Clock: h.clk,
		RunFile: func(ctx context.Context, path, dir string) *reports.Record {
			h.started <- filepath.Base(path)
			rec := &reports.Record{Experiment: reports.Experiment{Name: filepath.Base(path), Owner: reports.Owner{Team: "payments"}}, Verdict: reports.Passed, Reason: "held"}
			select {
			case <-h.release:
			case <-ctx.Done():
				h.causes <- context.Cause(ctx)
				rec.Verdict, rec.Reason = reports.Aborted, context.Cause(ctx).Error()
			}
			return rec
		},
	}
	go func() {
		var err error
		h.results, err = h.g.Run(t.Context())
		h.done <- err
	}()
	return h
}

// TestGameDayCheckpointContinue: the first experiment runs, the game day
// waits at the checkpoint until `chaos gameday continue` (Continue), then
// runs the second; the combined report has the notes and both verdicts.
func TestGameDayCheckpointContinue(t *testing.T) {
	h := startGameDay(t)
	require.Equal(t, "one.yaml", recv(t, h.started, "the first experiment"))
	_, _, err := Continue(h.g.Dir)
	require.ErrorIs(t, err, ErrNotWaiting, "not at a checkpoint yet: continue says so")
	h.release <- struct{}{}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.clk.BlockUntil(ctx, 2), "the game day waits at the checkpoint (and watches for an abort)")
	step, msg, err := Continue(h.g.Dir)
	require.NoError(t, err)
	require.Equal(t, 1, step)
	require.Equal(t, "Dashboards green?", msg)
	h.clk.Advance(pollEvery)
	require.Equal(t, "two.yaml", recv(t, h.started, "the second experiment after the checkpoint"))
	h.release <- struct{}{}
	require.NoError(t, recv(t, h.done, "the game day ends"))
	require.Len(t, h.results, 3)
	md, err := os.ReadFile(filepath.Join(h.g.ReportDir, GameDayReportFile))
	require.NoError(t, err)
	require.Contains(t, string(md), "To: payments")
	require.Contains(t, string(md), "- on-call: Ana", "notes go into the combined report")
	require.Contains(t, string(md), "**one.yaml** (owner payments): **passed**")
	require.Contains(t, string(md), "**two.yaml** (owner payments): **passed**")
	require.Contains(t, string(md), "Checkpoint: Dashboards green? (confirmed at")
}

// TestGameDayAbort: aborting while an experiment is live cancels its run
// (the engine reverts) and the rest never starts.
func TestGameDayAbort(t *testing.T) {
	h := startGameDay(t)
	recv(t, h.started, "the first experiment")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.clk.BlockUntil(ctx, 1), "the game day watches for an abort")
	require.NoError(t, Abort(h.g.Dir, "checkout paged"))
	h.clk.Advance(pollEvery)
	require.ErrorIs(t, recv(t, h.causes, "the live run is cancelled"), ErrGameDayAborted)
	require.ErrorIs(t, recv(t, h.done, "the game day ends"), ErrGameDayAborted)
	require.Len(t, h.results, 1, "nothing after the abort ran")
	require.Equal(t, reports.Aborted, h.results[0].Record.Verdict)
	md, err := os.ReadFile(filepath.Join(h.g.ReportDir, GameDayReportFile))
	require.NoError(t, err)
	require.Contains(t, string(md), "**Stopped early**")
	require.Contains(t, string(md), "checkout paged")
	require.Contains(t, string(md), "3. two.yaml: not run")
}
