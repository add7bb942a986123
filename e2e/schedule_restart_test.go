package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// claimLayout names a fire claim in STATE/fires/SCHEDULE/ENTRY (the
// scheduler's).
const claimLayout = "20060102T150405Z"

// firesOf is the folder of a schedule's fire claims of entry in state;
// writeScheduleFile's schedules are named e2e.
func firesOf(state, entry string) string {
	return filepath.Join(state, "fires", "e2e", entry)
}

// waitBegun waits until a single scheduler on state has begun scheduling
// entry: its record in the fire claims exists. Then its signal handler is
// set and its catch-up has looked at the entry.
func waitBegun(t *testing.T, p *process, state, entry string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(firesOf(state, entry), "since"))
		return err == nil
	}, waitLimit, 20*time.Millisecond, "the scheduler records where %s's record begins\nstderr:\n%s", entry, p.stderr)
}

// claimsOf lists entry's fire claims in state, with who made each.
func claimsOf(t *testing.T, state, entry string) map[time.Time]string {
	t.Helper()
	dir := firesOf(state, entry)
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	out := map[time.Time]string{}
	for _, de := range des {
		at, err := time.Parse(claimLayout, de.Name())
		if err != nil {
			continue // the since file
		}
		out[at] = strings.TrimSpace(readFile(t, dir, de.Name()))
	}
	return out
}

// TestScheduleRestartCatchesUp runs a single `chaos schedule` (no leader
// election) on an entry that falls due while it is stopped: started on a
// fresh state directory, it is stopped (SIGTERM) before the fire and
// started again after it. Within the entry's starting deadline the
// restarted scheduler runs the fire it missed, once (a report, a claim,
// the log and /metrics say caught up); past the deadline it skips it as
// missed, saying the scheduler was not running.
func TestScheduleRestartCatchesUp(t *testing.T) {
	t.Run("within the deadline", func(t *testing.T) {
		t.Parallel()
		tg := startTarget(t)
		exp := writeExperiment(t, tg, experimentOpts{name: "missed", faultFor: "1s"})
		due := time.Now().Add(10 * time.Second).Truncate(time.Second)
		sched := writeScheduleFile(t, fmt.Sprintf("    - {name: daily, experiments: [%q], cron: %q, startingDeadline: 1m}\n", exp.File, cronAt(due)))
		state, dir := t.TempDir(), t.TempDir()

		first := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "", sched)
		waitBegun(t, first, state, "daily")
		require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, first.exitCode(t), "stderr:\n%s", first.stderr)
		require.True(t, time.Now().Before(due), "precondition: the scheduler was stopped before the fire (the machine took more than 10s)")
		require.Empty(t, claimsOf(t, state, "daily"), "stopped before the fire: nothing decided")
		require.NotContains(t, first.stderr.String(), `msg="catch up"`, "a first start on an empty state directory catches up nothing")
		require.Contains(t, first.stderr.String(), `msg="nothing to catch up" entries=1 first=daily why="new to this state directory`, "and says why")

		// Nothing runs while the fire falls due: wait for its time to pass
		// (at most 10s), then start again.
		time.Sleep(time.Until(due) + time.Second)
		second := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "127.0.0.1:0", sched)
		addr := fieldOf(second.waitLine(t, second.stderr, "msg=listening"), "addr=")
		id := fieldOf(second.waitLine(t, second.stderr, "msg=schedule "), "claimsAs=")
		catch := second.waitLine(t, second.stderr, `msg="catch up" entry=daily`)
		require.Contains(t, catch, `why="no scheduler was running on this state directory"`, "the log says why the fire is caught up")
		run := second.waitLine(t, second.stderr, "msg=run entry=daily")
		require.Contains(t, run, "caughtUp=true")
		require.Equal(t, due.UTC(), parseDue(t, run), "the fire it missed runs")
		require.Contains(t, second.waitLine(t, second.stderr, "msg=ran entry=daily"), "verdict=passed")
		metrics := httpGet(t, "http://"+addr+"/metrics")
		require.Contains(t, metrics, `chaos_schedule_caught_up_total{entry="daily"} 1`)
		require.Contains(t, metrics, `chaos_schedule_runs_total{entry="daily",verdict="passed"} 1`)
		require.NotContains(t, metrics, `chaos_schedule_skipped_total{entry="daily"`, "nothing was skipped")
		require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, second.exitCode(t), "stderr:\n%s", second.stderr)

		recs := reportsOf(t, dir, "daily")
		require.Len(t, recs, 1, "the missed fire ran once and wrote its report")
		require.Equal(t, reports.Passed, recs[0].Verdict)
		require.Equal(t, map[time.Time]string{due.UTC(): id}, claimsOf(t, state, "daily"), "the fire is decided once, by the restarted scheduler")
		requireNothingLeft(t, exp)
	})

	t.Run("past the deadline", func(t *testing.T) {
		t.Parallel()
		tg := startTarget(t)
		exp := writeExperiment(t, tg, experimentOpts{name: "toolate", faultFor: "1s"})
		due := time.Now().Add(10 * time.Second).Truncate(time.Second)
		sched := writeScheduleFile(t, fmt.Sprintf("    - {name: daily, experiments: [%q], cron: %q, startingDeadline: 2s}\n", exp.File, cronAt(due)))
		state, dir := t.TempDir(), t.TempDir()

		first := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "", sched)
		waitBegun(t, first, state, "daily")
		require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, first.exitCode(t), "stderr:\n%s", first.stderr)
		require.True(t, time.Now().Before(due), "precondition: the scheduler was stopped before the fire (the machine took more than 10s)")

		// Wait for the fire's starting deadline to pass (at most 14s).
		time.Sleep(time.Until(due) + 4*time.Second)
		second := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "127.0.0.1:0", sched)
		addr := fieldOf(second.waitLine(t, second.stderr, "msg=listening"), "addr=")
		skip := second.waitLine(t, second.stderr, "msg=skip entry=daily")
		require.Contains(t, skip, "reason=missed")
		require.Contains(t, skip, "no scheduler was running on this state directory: due at "+due.UTC().Format(time.RFC3339)+", past its starting deadline of 2s")
		require.NotContains(t, skip, "leading", "a single scheduler speaks of no leader")
		require.Equal(t, due.UTC(), parseDue(t, skip))
		metrics := httpGet(t, "http://"+addr+"/metrics")
		require.Contains(t, metrics, `chaos_schedule_skipped_total{entry="daily",reason="missed"} 1`)
		require.NotContains(t, metrics, `chaos_schedule_caught_up_total{entry="daily"}`, "nothing ran late")
		require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, second.exitCode(t), "stderr:\n%s", second.stderr)

		require.NotContains(t, second.stderr.String(), "msg=run ", "the missed fire did not run")
		require.Empty(t, reportsOf(t, dir, "daily"))
		require.Len(t, claimsOf(t, state, "daily"), 1, "the skip is decided once")
		requireNothingLeft(t, exp)
	})
}

// parseDue is the due time a scheduler's log line names.
func parseDue(t *testing.T, line string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, fieldOf(line, "due="))
	require.NoError(t, err, "a due time in %q", line)
	return at.UTC()
}

// TestScheduleTwoOnOneStateDir starts two single schedulers (no leader
// election) of one schedule on one state directory, as a mistake would:
// every fire runs once between them, the other skipping it as claimed by
// the first. A different schedule on the same state directory with an
// entry of the same name is not in their way: claims are per schedule.
// The claims are pruned as they go: an old entry's claims older than the
// longest starting deadline plus 10 minutes are removed, its newest kept.
func TestScheduleTwoOnOneStateDir(t *testing.T) {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "tick", faultFor: "1s"})
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", exp.File, "*/3 * * * * *"))
	state := t.TempDir()
	// An entry the schedule no longer has, with claims from two hours ago.
	gone := firesOf(state, "gone")
	require.NoError(t, os.MkdirAll(gone, 0o700))
	old := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	for i := range 5 {
		require.NoError(t, os.WriteFile(filepath.Join(gone, old.Add(time.Duration(i)*time.Minute).Format(claimLayout)), []byte("old_1\n"), 0o600))
	}

	// The other schedule acts on a target of its own: what is tested is
	// that its fires are its own, not the target locks.
	otherExp := writeExperiment(t, startTarget(t), experimentOpts{name: "other", faultFor: "1s"})
	otherSched := writeNamedSchedule(t, "other", fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", otherExp.File, "*/3 * * * * *"))

	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	a := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirA, "--listen", "", sched)
	b := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirB, "--listen", "", sched)
	c := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirC, "--listen", "", otherSched)
	idA := fieldOf(a.waitLine(t, a.stderr, "msg=schedule "), "claimsAs=")
	idB := fieldOf(b.waitLine(t, b.stderr, "msg=schedule "), "claimsAs=")
	require.NotEqual(t, idA, idB)
	// Both reach every fire; wait until the losers have skipped three.
	require.Eventually(t, func() bool {
		return strings.Count(a.stderr.String(), "reason=claimed")+strings.Count(b.stderr.String(), "reason=claimed") >= 3
	}, waitLimit, 50*time.Millisecond, "both schedulers reach the fires\nA:\n%s\nB:\n%s", a.stderr, b.stderr)
	require.Eventually(t, func() bool {
		des, err := os.ReadDir(gone)
		return err == nil && len(des) == 1
	}, waitLimit, 50*time.Millisecond, "the old claims are pruned")
	_, err := os.Stat(filepath.Join(gone, old.Add(4*time.Minute).Format(claimLayout)))
	require.NoError(t, err, "an entry's newest claim is kept")
	require.Eventually(t, func() bool { return strings.Count(c.stderr.String(), "msg=ran entry=tick") >= 2 }, waitLimit, 50*time.Millisecond,
		"the other schedule runs its own fires\nstderr:\n%s", c.stderr)
	for _, p := range []*process{a, b, c} {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, p := range []*process{a, b, c} {
		require.Equal(t, 0, p.exitCode(t), "stderr:\n%s", p.stderr)
	}
	logA, logB := a.stderr.String(), b.stderr.String()
	require.NotContains(t, c.stderr.String(), "reason=claimed", "another schedule's claims are not this one's")
	otherClaims, err := filepath.Glob(filepath.Join(state, "fires", "other", "tick", "2*Z"))
	require.NoError(t, err)
	require.NotEmpty(t, otherClaims, "the other schedule claims under its own name")

	runA, runB := dues(logA, "msg=run "), dues(logB, "msg=run ")
	for d := range runA {
		require.False(t, runB[d], "the fire due %s ran on both schedulers\nA:\n%s\nB:\n%s", d, logA, logB)
	}
	require.GreaterOrEqual(t, len(runA)+len(runB), 3, "the fires ran")
	for _, l := range strings.Split(logA+logB, "\n") {
		if strings.Contains(l, "reason=claimed") {
			require.Contains(t, l, "another scheduler on this state directory (", "the skip names the other scheduler: %s", l)
			require.True(t, strings.Contains(l, idA) || strings.Contains(l, idB), l)
		}
	}
	// Every fire either decided (ran, or skipped for a reason other than
	// the other's claim) is claimed once, by one of them.
	decided := map[time.Time]bool{}
	for _, l := range strings.Split(logA+logB, "\n") {
		if strings.Contains(l, "entry=tick") && (strings.Contains(l, "msg=run ") || strings.Contains(l, "msg=skip ") && !strings.Contains(l, "reason=claimed")) {
			decided[parseDue(t, l)] = true
		}
	}
	claims := claimsOf(t, state, "tick")
	for at, who := range claims {
		require.Contains(t, []string{idA, idB}, who, "the claim of the fire due %s", at)
		require.True(t, decided[at], "the fire due %s was claimed and decided\nA:\n%s\nB:\n%s", at, logA, logB)
	}
	require.Len(t, claims, len(decided), "every decided fire is claimed\nA:\n%s\nB:\n%s", logA, logB)
	require.Len(t, append(reportsOf(t, dirA, "tick"), reportsOf(t, dirB, "tick")...), len(runA)+len(runB), "one report per run")
	requireNothingLeft(t, exp)
	requireNothingLeft(t, otherExp)
}
