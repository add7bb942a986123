package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// cronAt is a cron expression (with seconds) that fires once a day at t.
func cronAt(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %d %d * * *", t.Second(), t.Minute(), t.Hour())
}

// writeScheduleFile writes a schedule file named e2e next to nothing
// else; the entries name experiment files by absolute path.
func writeScheduleFile(t *testing.T, entries string) string {
	t.Helper()
	return writeNamedSchedule(t, "e2e", entries)
}

// writeNamedSchedule writes a schedule file named name.
func writeNamedSchedule(t *testing.T, name, entries string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedule.yaml")
	text := "apiVersion: chaos/v1\nkind: Schedule\nmetadata: {name: " + name + "}\nspec:\n  timeZone: UTC\n  entries:\n" + entries
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// reportsOf reads every report.json under dir/entry.
func reportsOf(t *testing.T, dir, entry string) []*reports.Record {
	t.Helper()
	runs, err := filepath.Glob(filepath.Join(dir, entry, "*", reports.JSONFile))
	require.NoError(t, err)
	var out []*reports.Record
	for _, r := range runs {
		out = append(out, readRecord(t, filepath.Dir(r)))
	}
	return out
}

// TestScheduleTwoEntriesOneTarget runs `chaos schedule` with three entries
// on one demo target, due seconds apart: the first runs at its time; the
// second (Forbid), due while the first is live, is skipped; the third
// (Allow), due then too, waits and runs once the first has ended. Each run
// writes its reports, and /metrics counts all of it.
func TestScheduleTwoEntriesOneTarget(t *testing.T) {
	tg := startTarget(t)
	first := writeExperiment(t, tg, experimentOpts{name: "first", faultFor: "3s"})
	second := writeExperiment(t, tg, experimentOpts{name: "second", faultFor: "1s"})
	// Far enough ahead for the binary to start on a busy machine; the
	// later entries are due while the first run's 3s fault is live.
	t0 := time.Now().Add(6 * time.Second).Truncate(time.Second)
	sched := writeScheduleFile(t, fmt.Sprintf(`    - {name: first, experiments: [%q], cron: %q}
    - {name: forbid, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}
    - {name: allow, experiments: [%q], cron: %q, concurrencyPolicy: Allow, startingDeadline: 2m}
`, first.File, cronAt(t0), second.File, cronAt(t0.Add(2*time.Second)), second.File, cronAt(t0.Add(2*time.Second))))
	dir := t.TempDir()

	run := start(t, built.chaos, "schedule", "--report-dir", dir, "--listen", "127.0.0.1:0", sched)
	addr := strings.TrimPrefix(fieldOf(run.waitLine(t, run.stderr, "msg=listening"), "addr="), "")
	health := httpGet(t, "http://"+addr+"/healthz")
	require.Contains(t, health, "ok", "/healthz answers while scheduling")

	skip := run.waitLine(t, run.stderr, "msg=skip entry=forbid")
	require.Contains(t, skip, "reason=concurrency", "Forbid skips the fire while the first run holds the target")
	ranFirst := run.waitLine(t, run.stderr, "msg=ran entry=first")
	require.Contains(t, ranFirst, "verdict=passed")
	ranAllow := run.waitLine(t, run.stderr, "msg=ran entry=allow")
	require.Contains(t, ranAllow, "verdict=passed", "Allow waited for the target and then ran")

	metrics := httpGet(t, "http://"+addr+"/metrics")
	require.Contains(t, metrics, `chaos_schedule_runs_total{entry="first",verdict="passed"} 1`)
	require.Contains(t, metrics, `chaos_schedule_runs_total{entry="allow",verdict="passed"} 1`)
	require.Contains(t, metrics, `chaos_schedule_skipped_total{entry="forbid",reason="concurrency"} 1`)
	require.Contains(t, metrics, `chaos_schedule_next_run_timestamp_seconds{entry="first"}`)

	require.NoError(t, run.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, run.exitCode(t), "a scheduler told to stop with nothing live exits 0\nstderr:\n%s", run.stderr)

	a := reportsOf(t, dir, "first")
	require.Len(t, a, 1, "the first entry's run wrote its report")
	b := reportsOf(t, dir, "allow")
	require.Len(t, b, 1, "the waiting entry's run wrote its report")
	require.Equal(t, reports.Passed, a[0].Verdict)
	require.Equal(t, reports.Passed, b[0].Verdict)
	require.False(t, b[0].StartedAt.Before(a[0].EndedAt), "never two runs on one target: the second started after the first ended")
	require.Empty(t, reportsOf(t, dir, "forbid"), "a skipped fire ran nothing")
	requireNothingLeft(t, first)
}

// TestScheduleSIGTERMRevertsLiveRun: SIGTERM while a scheduled run's fault
// is live reverts it, writes the aborted report and exits.
func TestScheduleSIGTERMRevertsLiveRun(t *testing.T) {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "long"})
	t0 := time.Now().Add(4 * time.Second).Truncate(time.Second)
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: long, experiments: [%q], cron: %q}\n", exp.File, cronAt(t0)))
	dir := t.TempDir()

	run := start(t, built.chaos, "schedule", "--report-dir", dir, "--listen", "", sched)
	run.waitLine(t, run.stderr, "msg=inject")
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, run.exitCode(t), "stderr:\n%s", run.stderr)
	recs := reportsOf(t, dir, "long")
	require.Len(t, recs, 1)
	require.Equal(t, reports.Aborted, recs[0].Verdict, "the interrupted run aborted (reason: %s)", recs[0].Reason)
	require.Empty(t, recs[0].Leftovers, "and reverted everything")
	requireNothingLeft(t, exp)
}

// fieldOf returns the value of a logfmt field in line.
func fieldOf(line, key string) string {
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	v := line[i+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return strings.Trim(v, `"`)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return string(b)
}

// TestGameDayOnDemo runs a game day with the real binary: an experiment,
// a checkpoint confirmed by `chaos gameday continue`, another experiment;
// the combined report lists both verdicts and the note.
func TestGameDayOnDemo(t *testing.T) {
	tg := startTarget(t)
	one := writeExperiment(t, tg, experimentOpts{name: "one", faultFor: "1s"})
	two := writeExperiment(t, tg, experimentOpts{name: "two", faultFor: "1s"})
	day := filepath.Join(t.TempDir(), "day.yaml")
	require.NoError(t, os.WriteFile(day, []byte(fmt.Sprintf(`apiVersion: chaos/v1
kind: GameDay
metadata: {name: q3-e2e}
spec:
  steps:
    - experiment: %q
    - checkpoint: Dashboards green?
    - experiment: %q
`, one.File, two.File)), 0o644))
	state, dir := t.TempDir(), t.TempDir()

	run := start(t, built.chaos, "gameday", "run", "--state-dir", state, "--report-dir", dir, "--note", "on-call: Ana", day)
	run.waitLine(t, run.stderr, "msg=checkpoint")
	cont := start(t, built.chaos, "gameday", "continue", "--state-dir", state, "q3-e2e")
	require.Equal(t, 0, cont.exitCode(t), "continue confirms the checkpoint\nstderr:\n%s\ngame day stderr:\n%s", cont.stderr, run.stderr)
	require.Contains(t, cont.stdout.String(), "confirmed step 2: Dashboards green?")
	require.Equal(t, 0, run.exitCode(t), "stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

	md := readFile(t, dir, "gameday.md")
	require.Contains(t, md, "To: e2e-team")
	require.Contains(t, md, "- on-call: Ana")
	require.Contains(t, md, "**one** (owner e2e-team): **passed**")
	require.Contains(t, md, "**two** (owner e2e-team): **passed**")
	require.Contains(t, md, "Checkpoint: Dashboards green? (confirmed at")
	requireNothingLeft(t, two)
}
