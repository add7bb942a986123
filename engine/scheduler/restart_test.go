package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// The tests of a single scheduler (no leader election): it holds its
// schedule's lock in the state directory and keeps a progress record
// there; restarted, it catches up from that record. Entry a fires every
// 10s with a 20s starting deadline (startSingle).

const everyTen = `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
`

// startSingle starts a single scheduler of entries on dir (the schedule's
// folder of a state directory), as chaos schedule does: OpenProgress,
// then Run. stop ends the run and gives the lock back.
func startSingle(t *testing.T, clk *clock.Fake, dir, id, entries string) *replica {
	t.Helper()
	p, err := OpenProgress(dir, id)
	require.NoError(t, err)
	m, err := NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)
	r := &replica{id: id, fired: make(chan Outcome, 64), done: make(chan error, 1), metrics: m}
	r.sch = &Scheduler{
		Schedule: writeSchedule(t, entries), Clock: clk, Metrics: m,
		RunFile: func(context.Context, string, string) *reports.Record {
			return &reports.Record{Verdict: reports.Passed}
		},
		Progress: p,
		Fired:    func(o Outcome) { r.fired <- o },
	}
	ctx, cancel := context.WithCancel(t.Context())
	r.stop = func() {
		cancel()
		<-r.done
		r.done <- nil
		require.NoError(t, p.Close())
	}
	go func() { r.done <- r.sch.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// record reads the progress record in dir as saved.
func record(t *testing.T, dir string) progressRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, progressFile))
	require.NoError(t, err, "the progress record is saved")
	var rec progressRecord
	require.NoError(t, json.Unmarshal(b, &rec))
	return rec
}

// TestRestartCatchesUpTheFireMissedWhileDown: a single scheduler starts at
// 10:00:00 on an empty state directory and is stopped at 10:00:05, before
// the entry's first fire. Started again at 10:00:15, it runs the 10:00:10
// fire it missed (5s late, within the deadline), once, counted as caught
// up; then it schedules on, and its record says how far it got.
func TestRestartCatchesUpTheFireMissedWhileDown(t *testing.T) {
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	one := startSingle(t, clk, dir, "host_1", everyTen)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()
	rec := record(t, dir)
	require.Equal(t, progressEntry{Since: t0}, rec.Entries["a"], "stopped before the first fire: nothing decided, the record began at the start")
	require.Equal(t, t0.Add(5*time.Second), rec.SavedAt, "saved once more at the stop")

	clk.Advance(10 * time.Second) // 10:00:15
	two := startSingle(t, clk, dir, "host_2", everyTen)
	o := recv(t, two.fired, "the missed fire")
	require.Equal(t, t0.Add(10*time.Second), o.At)
	require.Empty(t, o.Skip, "within its starting deadline: it runs (%s)", o.Detail)
	require.True(t, o.CaughtUp)
	require.Len(t, o.Records, 1)
	require.Equal(t, t0.Add(15*time.Second), o.Started, "it ran when the scheduler began again")
	require.InDelta(t, 1, count(t, two.metrics.caughtUps.WithLabelValues("a")), 0, "the catch-up is counted")

	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second) // 10:00:20
	o = recv(t, two.fired, "the next fire")
	require.Equal(t, t0.Add(20*time.Second), o.At)
	require.Empty(t, o.Skip)
	require.False(t, o.CaughtUp, "a fire on time is not a catch-up")
	two.stop()
	require.Equal(t, progressEntry{Since: t0, Decided: t0.Add(20 * time.Second)}, record(t, dir).Entries["a"])

	// A third start right after catches up nothing: every fire up to now
	// was decided.
	three := startSingle(t, clk, dir, "host_3", everyTen)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second) // 10:00:30
	o = recv(t, three.fired, "the next fire")
	require.Equal(t, t0.Add(30*time.Second), o.At, "nothing before it was decided again")
	require.False(t, o.CaughtUp)
}

// TestRestartPastTheDeadlineSkipsAsMissed: down from 10:00:05 to 10:00:47,
// the scheduler missed :10, :20, :30 and :40. Only :40 is within its
// deadline and runs; the others are skipped as missed, counted, and say
// that the scheduler was not running (there is no leader to speak of).
func TestRestartPastTheDeadlineSkipsAsMissed(t *testing.T) {
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	one := startSingle(t, clk, dir, "host_1", everyTen)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()

	clk.Advance(42 * time.Second) // 10:00:47
	two := startSingle(t, clk, dir, "host_2", everyTen)
	got := two.outcomes(t, 4)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, s := range []int{10, 20} {
		require.Equal(t, SkipMissed, got[at(s)].Skip, "the fire due :%d is past its deadline", s)
		require.Contains(t, got[at(s)].Detail, "no scheduler was running on this state directory")
		require.NotContains(t, got[at(s)].Detail, "leading", "a single scheduler has no leader")
	}
	require.Equal(t, SkipMissed, got[at(30)].Skip, "only the newest fire of the gap is caught up")
	require.Contains(t, got[at(30)].Detail, "no scheduler was running on this state directory, and a later fire")
	require.Empty(t, got[at(40)].Skip)
	require.True(t, got[at(40)].CaughtUp)
	require.InDelta(t, 3, count(t, two.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0)
	two.stop()
	require.Equal(t, at(40), record(t, dir).Entries["a"].Decided, "the gap was decided")
}

// TestRestartPastTheNewestDeadline: an entry fires every minute with a 20s
// deadline; the scheduler is down from 10:00:05 to 10:01:30, so even the
// newest fire it missed (10:01:00) is past its deadline: skipped as
// missed, saying why, and nothing runs late; a start after that does not
// decide it again.
func TestRestartPastTheNewestDeadline(t *testing.T) {
	const minutely = `  entries:
    - {name: a, experiments: [exp.yaml], cron: "0 * * * * *", startingDeadline: 20s}
`
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	one := startSingle(t, clk, dir, "host_1", minutely)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()

	clk.Advance(85 * time.Second) // 10:01:30
	two := startSingle(t, clk, dir, "host_2", minutely)
	o := recv(t, two.fired, "the missed fire")
	require.Equal(t, t0.Add(time.Minute), o.At)
	require.Equal(t, SkipMissed, o.Skip)
	require.False(t, o.CaughtUp)
	require.Empty(t, o.Records, "nothing ran")
	require.Equal(t, "no scheduler was running on this state directory: due at 2026-03-06T10:01:00Z, past its starting deadline of 20s", o.Detail)
	require.InDelta(t, 1, count(t, two.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0)
	require.Zero(t, count(t, two.metrics.caughtUps.WithLabelValues("a")), "nothing ran late")
	two.stop()

	three := startSingle(t, clk, dir, "host_3", minutely)
	waitTimers(t, clk, 1)
	select {
	case o := <-three.fired:
		t.Fatalf("the skip is decided once, but a third start decided %s again", o.At)
	default:
	}
}

// TestFirstStartCatchesUpNothing: a scheduler's first start on a state
// directory, empty or written by an older version (no fires folder),
// catches up nothing, however the entry's cron lies behind it; its record
// begins at the start (saved before the loop, so a crash keeps it), and it
// waits for the next fire. An entry added to the schedule later is new in
// the same way; one removed leaves the record.
func TestFirstStartCatchesUpNothing(t *testing.T) {
	for name, dir := range map[string]func(t *testing.T) string{
		"empty": func(t *testing.T) string { return t.TempDir() },
		"older version": func(t *testing.T) string {
			state := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(state, "ledger.lock"), nil, 0o600), "an older version's state")
			return filepath.Join(state, "fires", "test")
		},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clock.NewFake(t0.Add(47 * time.Second))
			dir := dir(t)
			r := startSingle(t, clk, dir, "host_1", everyTen)
			waitTimers(t, clk, 1)
			require.Equal(t, progressEntry{Since: t0.Add(47 * time.Second)}, record(t, dir).Entries["a"], "the entry's record begins, saved before any fire")
			clk.Advance(3 * time.Second)
			o := recv(t, r.fired, "the first fire")
			require.Equal(t, t0.Add(50*time.Second), o.At, "no fire before the first start was decided")
			require.Empty(t, o.Skip)
			require.False(t, o.CaughtUp)
			require.Zero(t, count(t, r.metrics.skips.WithLabelValues("a", string(SkipMissed))), "nothing is missed on a first start")
			r.stop()

			// Entry a removed, b added: b's record begins now; a's goes.
			clk.Advance(time.Minute)
			second := startSingle(t, clk, dir, "host_2", `  entries:
    - {name: b, experiments: [exp.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
`)
			waitTimers(t, clk, 1)
			rec := record(t, dir)
			require.Equal(t, map[string]progressEntry{"b": {Since: t0.Add(110 * time.Second)}}, rec.Entries)
			second.stop()
		})
	}
}

// TestSecondSchedulerOfAScheduleRefused: one scheduler per schedule per
// state directory. A second of the same schedule is refused at once,
// naming the first's pid and identity; a different schedule on the same
// state directory is not; once the first gives the lock back, the next
// may take it.
func TestSecondSchedulerOfAScheduleRefused(t *testing.T) {
	state := t.TempDir()
	first, err := OpenProgress(filepath.Join(state, "fires", "nightly"), "host_1")
	require.NoError(t, err)
	_, err = OpenProgress(filepath.Join(state, "fires", "nightly"), "host_2")
	require.ErrorIs(t, err, ErrScheduleHeld)
	var held *HeldError
	require.True(t, errors.As(err, &held))
	require.Equal(t, os.Getpid(), held.PID, "the refusal names the holder's pid")
	require.Equal(t, "host_1", held.Identity)
	require.Contains(t, err.Error(), filepath.Join(state, "fires", "nightly", lockFile), "and the lock file")

	other, err := OpenProgress(filepath.Join(state, "fires", "weekly"), "host_2")
	require.NoError(t, err, "another schedule on the same state directory is not blocked")
	require.NoError(t, other.Close())

	require.NoError(t, first.Close())
	again, err := OpenProgress(filepath.Join(state, "fires", "nightly"), "host_2")
	require.NoError(t, err, "the lock is free once its holder let go")
	require.NoError(t, again.Close())
}

// TestProgressRecordUnreadable: a progress record that is not one is an
// error naming the file and the fix, not a guess; the lock is given back.
func TestProgressRecordUnreadable(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, progressFile), []byte("{\"entries\": yesterday"), 0o600))
	_, err := OpenProgress(dir, "host_1")
	require.Error(t, err)
	require.Contains(t, err.Error(), filepath.Join(dir, progressFile)+":1:13:", "the error names the file, line and column")
	require.Contains(t, err.Error(), "remove it")
	require.NoError(t, os.Remove(filepath.Join(dir, progressFile)))
	p, err := OpenProgress(dir, "host_1")
	require.NoError(t, err, "the failed open gave the lock back")
	require.NoError(t, p.Close())
}

// TestProgressKeptOffTheFirePath: a fire is noted in memory; the record
// on disk follows within Every, without the scheduler stopping, and no
// temporary file is left beside it.
func TestProgressKeptOffTheFirePath(t *testing.T) {
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	r := startSingle(t, clk, dir, "host_1", everyTen)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	o := recv(t, r.fired, "the first fire")
	require.Empty(t, o.Skip)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, progressFile))
		if err != nil {
			return false
		}
		var rec progressRecord
		return json.Unmarshal(b, &rec) == nil && rec.Entries["a"].Decided.Equal(t0.Add(10*time.Second))
	}, 10*time.Second, 10*time.Millisecond, "the writer saves the decided fire while the scheduler runs")
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	require.ElementsMatch(t, []string{lockFile, progressFile}, names, "no temporary file is left")
}

// TestProgressRunTwiceOnOneLock: a scheduler run again on the progress it
// holds (without giving the lock back) resumes from what its last run
// decided, not from the record as it was opened (empty: it would catch
// nothing up).
func TestProgressRunTwiceOnOneLock(t *testing.T) {
	clk := clock.NewFake(t0)
	dir := t.TempDir()
	p, err := OpenProgress(dir, "host_1")
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()
	fired := make(chan Outcome, 8)
	sch := &Scheduler{
		Schedule: writeSchedule(t, everyTen), Clock: clk, Progress: p,
		RunFile: func(context.Context, string, string) *reports.Record {
			return &reports.Record{Verdict: reports.Passed}
		},
		Fired: func(o Outcome) { fired <- o },
	}
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- sch.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	require.Empty(t, recv(t, fired, "the first fire").Skip)
	stop()

	clk.Advance(15 * time.Second) // 10:00:25: :20 fell due between the runs
	stop = run()
	defer stop()
	o := recv(t, fired, "the fire missed between the runs")
	require.Equal(t, t0.Add(20*time.Second), o.At, "caught up after :10, which the first run decided")
	require.True(t, o.CaughtUp)
}
