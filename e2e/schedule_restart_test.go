package e2e

import (
	"encoding/json"
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

// claimLayout names a claim of leader election: an instant's in
// STATE/fires/SCHEDULE, or a fire's in STATE/fires/SCHEDULE/ENTRY as the
// versions before per-instant claims wrote them.
const claimLayout = "20060102T150405Z"

// firesOf is the folder of entry in a schedule's folder of state (its
// since file, and the older layout's claims of its fires); with entry
// empty, the schedule's folder, where the instants are claimed.
// writeScheduleFile's schedules are named e2e.
func firesOf(state, entry string) string {
	return filepath.Join(state, "fires", "e2e", entry)
}

// entryProgress is an entry of a single scheduler's progress record.
type entryProgress struct {
	Since   time.Time `json:"since"`
	Decided time.Time `json:"decided"`
}

// progressOf reads the progress record of schedule e2e in state: per
// entry, when its record began and the newest fire decided. Nil when
// there is none (yet).
func progressOf(t *testing.T, state string) map[string]entryProgress {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "fires", "e2e", "progress.json"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var rec struct {
		Entries map[string]entryProgress `json:"entries"`
	}
	require.NoError(t, json.Unmarshal(b, &rec), "the progress record is JSON:\n%s", b)
	return rec.Entries
}

// waitBegun waits until a single scheduler on state has begun scheduling
// entry: its progress record, saved before the first fire, names it. Then
// its signal handler is set.
func waitBegun(t *testing.T, p *process, state, entry string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, ok := progressOf(t, state)[entry]
		return ok
	}, waitLimit, 20*time.Millisecond, "the scheduler records where %s's record begins\nstderr:\n%s", entry, p.stderr)
}

// TestScheduleRestartCatchesUp runs a single `chaos schedule` (no leader
// election) on an entry that falls due while it is stopped: started on a
// fresh state directory, it is stopped (SIGTERM) before the fire and
// started again after it. Within the entry's starting deadline the
// restarted scheduler runs the fire it missed, once (a report, the
// progress record, the log and /metrics say caught up); past the deadline
// it skips it as missed, saying the scheduler was not running.
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
		require.True(t, progressOf(t, state)["daily"].Decided.IsZero(), "stopped before the fire: nothing decided")
		require.NotContains(t, first.stderr.String(), `msg="catch up"`, "a first start on an empty state directory catches up nothing")
		require.Contains(t, first.stderr.String(), `msg="nothing to catch up" entries=1 first=daily why="new to this state directory`, "and says why")

		// Nothing runs while the fire falls due: wait for its time to pass
		// (at most 10s), then start again.
		time.Sleep(time.Until(due) + time.Second)
		second := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "127.0.0.1:0", sched)
		addr := fieldOf(second.waitLine(t, second.stderr, "msg=listening"), "addr=")
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
		require.Equal(t, due.UTC(), progressOf(t, state)["daily"].Decided.UTC(), "the record says the restarted scheduler decided the fire")
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
		require.Equal(t, due.UTC(), progressOf(t, state)["daily"].Decided.UTC(), "the skip is recorded, so no later start decides it again")
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

// TestScheduleTwoOnOneStateDir starts a single `chaos schedule` (no leader
// election), then, by mistake, a second of the same schedule on the same
// state directory: the second is refused at once (the exit code of a
// refusal) in one line naming the first's pid, and the first runs every
// fire once, one every 3s. A different schedule on the same state
// directory, with an entry of the same name, is not refused and runs its
// own fires.
func TestScheduleTwoOnOneStateDir(t *testing.T) {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "tick", faultFor: "1s"})
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", exp.File, "*/3 * * * * *"))
	state := t.TempDir()

	// The other schedule acts on a target of its own: what is tested is
	// that its lock and record are its own, not the target locks.
	otherExp := writeExperiment(t, startTarget(t), experimentOpts{name: "other", faultFor: "1s"})
	otherSched := writeNamedSchedule(t, "other", fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", otherExp.File, "*/3 * * * * *"))

	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	a := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirA, "--listen", "", sched)
	waitBegun(t, a, state, "tick")
	b := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirB, "--listen", "", sched)
	require.Equal(t, 5, b.exitCode(t), "a second scheduler of the schedule is refused\nstderr:\n%s", b.stderr)
	refusal := strings.TrimSpace(b.stderr.String())
	require.NotContains(t, refusal, "\n", "the refusal is one line")
	require.Contains(t, refusal, fmt.Sprintf("pid %d", a.cmd.Process.Pid), "it names the first scheduler's pid")
	require.Contains(t, refusal, `schedule "e2e"`)
	require.Contains(t, refusal, filepath.Join(state, "fires", "e2e", "scheduler.lock"))
	require.Empty(t, reportsOf(t, dirB, "tick"), "the refused scheduler ran nothing")

	c := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dirC, "--listen", "", otherSched)
	require.Eventually(t, func() bool {
		return strings.Count(a.stderr.String(), "msg=ran entry=tick") >= 3 && strings.Count(c.stderr.String(), "msg=ran entry=tick") >= 2
	}, waitLimit, 50*time.Millisecond, "both schedules run their fires\nA:\n%s\nC:\n%s", a.stderr, c.stderr)
	for _, p := range []*process{a, c} {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, p := range []*process{a, c} {
		require.Equal(t, 0, p.exitCode(t), "stderr:\n%s", p.stderr)
	}

	// The first decided every fire once: each due 3s after the one
	// before, none twice.
	logA := a.stderr.String()
	var prev time.Time
	for _, l := range strings.Split(logA, "\n") {
		if !strings.Contains(l, "msg=run entry=tick") && !strings.Contains(l, "msg=skip entry=tick") {
			continue
		}
		at := parseDue(t, l)
		if !prev.IsZero() {
			require.Equal(t, 3*time.Second, at.Sub(prev), "every fire once, in order\n%s", logA)
		}
		prev = at
	}
	require.Equal(t, prev, progressOf(t, state)["tick"].Decided.UTC(), "the record ends at the last fire decided")
	require.Len(t, reportsOf(t, dirA, "tick"), strings.Count(logA, "msg=run entry=tick"), "one report per run")
	otherRec, err := os.ReadFile(filepath.Join(state, "fires", "other", "progress.json"))
	require.NoError(t, err, "the other schedule keeps its record under its own name")
	require.Contains(t, string(otherRec), `"tick":`)
	requireNothingLeft(t, exp)
	requireNothingLeft(t, otherExp)
}

// TestScheduleCrashKeepsItsRecord: a single scheduler SIGKILLed after it
// ran a fire does not run that fire again when started again within its
// starting deadline: the record is saved while the scheduler runs (within
// a second of the fire), not only when it stops.
func TestScheduleCrashKeepsItsRecord(t *testing.T) {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "crash", faultFor: "1s"})
	due := time.Now().Add(6 * time.Second).Truncate(time.Second)
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: daily, experiments: [%q], cron: %q, startingDeadline: 10m}\n", exp.File, cronAt(due)))
	state, dir := t.TempDir(), t.TempDir()

	first := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "", sched)
	waitBegun(t, first, state, "daily")
	require.True(t, time.Now().Before(due), "precondition: the scheduler began before the fire (the machine took more than 5s)")
	require.Contains(t, first.waitLine(t, first.stderr, "msg=ran entry=daily"), "verdict=passed")
	require.Eventually(t, func() bool { return progressOf(t, state)["daily"].Decided.Equal(due) }, waitLimit, 20*time.Millisecond,
		"the record says the fire was decided, while the scheduler runs\nstderr:\n%s", first.stderr)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-first.exited

	second := start(t, built.chaos, "schedule", "--state-dir", state, "--report-dir", dir, "--listen", "", sched)
	second.waitLine(t, second.stderr, `msg="caught up"`)
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, second.exitCode(t), "stderr:\n%s", second.stderr)
	require.NotContains(t, second.stderr.String(), `msg="catch up"`, "nothing was left to catch up")
	require.NotContains(t, second.stderr.String(), "msg=run ", "the fire the crashed scheduler ran did not run again")
	require.Len(t, reportsOf(t, dir, "daily"), 1, "one run, one report")
	requireNothingLeft(t, exp)
}
