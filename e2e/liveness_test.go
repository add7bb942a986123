package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// The tests of this file check that a run always ends, with the fault gone
// and an honest verdict, when what it depends on stops moving: an
// expression that turns expensive mid-fault, a plugin that stops answering,
// and the signals a terminal, an SSH session or a CI runner send.

// revertTimeout is the engine's default bound on one revert; a run must end
// within its maxDuration plus this, whatever hangs.
const revertTimeout = 30 * time.Second

// livenessOpts vary the experiment of writeLiveness.
type livenessOpts struct {
	name      string
	leaseTTL  string // safety.leaseTTL; the default when empty
	abortWhen string // one budget.abortWhen expression, if any
	loadFile  string // when set, an exec probe `load` reads this file
}

// livenessMaxDuration is the maxDuration of writeLiveness experiments.
const livenessMaxDuration = time.Minute

// writeLiveness writes an experiment against tg: a 10ms latency fault on
// the link to the backend from 200ms into the fault phase for 50s (so only
// what the test does ends the run early), a 1-minute maxDuration, and
// optionally an exec probe that reads a file the test controls.
func writeLiveness(t *testing.T, tg target, o livenessOpts) *experiments.Experiment {
	t.Helper()
	probes := fmt.Sprintf("    front:\n      http: {url: %q}\n      every: 100ms\n      timeout: 10s\n", "http://"+tg.front+"/health")
	if o.loadFile != "" {
		probes += fmt.Sprintf("    load:\n      exec: {command: [cat, %q]}\n      every: 100ms\n      timeout: 10s\n", o.loadFile)
	}
	budget := ""
	if o.abortWhen != "" {
		budget = fmt.Sprintf("  budget:\n    abortWhen: [%s]\n", strconv.Quote(o.abortWhen))
	}
	safety := fmt.Sprintf("maxDuration: %s", livenessMaxDuration)
	if o.leaseTTL != "" {
		safety += ", leaseTTL: " + o.leaseTTL
	}
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: %s
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: The front answers 200 while its backend link is 10ms slower.
  targets:
    backend-link:
      endpoint: {listen: %q, upstream: %q}
  probes:
%s  steadyState:
    - front.status == 200
  faults:
    - {plugin: latency, target: backend-link, with: {delay: 10ms}, after: 200ms, for: 50s}
%s  safety: {%s}
`, o.name, tg.proxy, tg.backend, probes, budget, safety)
	path := filepath.Join(t.TempDir(), o.name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return exp
}

// requireEndedInTime checks the promise every run keeps, whatever hangs: it
// ends within its maxDuration plus the revert timeout.
func requireEndedInTime(t *testing.T, run *process, started time.Time) {
	t.Helper()
	run.exitCode(t)
	took := time.Since(started)
	require.Lessf(t, took, livenessMaxDuration+revertTimeout,
		"a run ends within maxDuration + the revert timeout, whatever hangs\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	t.Logf("the run ended %s after it started", took.Round(time.Millisecond))
}

// TestExpensiveExpressionMidFaultAborts runs a budget expression that is
// cheap before the fault and very expensive once an observation grows (an
// exec probe's output goes from 2 bytes to 64 KiB mid-fault, as a chatty
// command's would): the run aborts on the evaluation (its deadline or its
// memory budget, whichever stops it first), reverts, and exits without
// waiting for the evaluation to end.
func TestExpensiveExpressionMidFaultAborts(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	load := filepath.Join(t.TempDir(), "load")
	require.NoError(t, os.WriteFile(load, []byte("ok"), 0o644))
	// 873 × 873 iterations over a 64 KiB string: within the memory budget,
	// and tens of seconds of work.
	n := `int(len(load.stdout) / 75)`
	exp := writeLiveness(t, tg, livenessOpts{
		name:      "expensive-expression",
		loadFile:  load,
		abortWhen: fmt.Sprintf(`any(1..%s, {any(1..%s, {upper(load.stdout) contains "NEEDLE"})})`, n, n),
	})
	stateDir, reportDir := t.TempDir(), t.TempDir()

	started := time.Now()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
	waitInjected(t, run, stateDir)
	require.NoError(t, os.WriteFile(load, []byte(strings.Repeat("a", 64<<10)), 0o644), "make the observation large")
	requireEndedInTime(t, run, started)
	require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "an evaluation that cannot finish aborts the run\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	t.Logf("cause %s: %s", rec.Cause, rec.Reason)
	require.Truef(t, strings.HasPrefix(string(rec.Cause), "evaluation-"),
		"the cause is an evaluation problem (its deadline or its memory budget), not %q (reason: %s)", rec.Cause, rec.Reason)
	require.Len(t, rec.Faults, 1)
	require.Equal(t, "reverted", rec.Faults[0].State, "the fault is reverted (error: %s)", rec.Faults[0].Error)
	require.Empty(t, rec.Leftovers)
	requireNothingLeft(t, exp)
	require.Empty(t, openEntries(t, stateDir), "the aborted run closed every ledger entry")
}

// TestPluginStoppedMidFaultIsAnError stops the plugin process (SIGSTOP)
// while its fault is live: its renewals time out, the lease is lost within
// the TTL, the run ends with verdict error, and the plugin is killed
// (SIGTERM, SIGCONT, SIGKILL), which takes the proxy down with it.
func TestPluginStoppedMidFaultIsAnError(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	exp := writeLiveness(t, tg, livenessOpts{name: "plugin-stopped", leaseTTL: "2s"})
	stateDir, reportDir := t.TempDir(), t.TempDir()

	started := time.Now()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
	waitInjected(t, run, stateDir)
	plugin := pluginOf(t, run)
	t.Cleanup(func() {
		_ = syscall.Kill(plugin.pid, syscall.SIGCONT)
		_ = syscall.Kill(plugin.pid, syscall.SIGKILL)
	})
	require.NoError(t, syscall.Kill(plugin.pid, syscall.SIGSTOP), "stop the plugin process")
	requireEndedInTime(t, run, started)
	require.Equalf(t, reports.Error.ExitCode(), run.exitCode(t), "a plugin that stops answering is an error\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Error, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Equal(t, reports.Cause("lease-lost"), rec.Cause, "the cause is the lost lease (reason: %s)", rec.Reason)
	require.NotEmpty(t, rec.Leftovers, "the report says what the killed plugin may have left")
	requireNothingLeft(t, exp)
	require.Empty(t, pluginsOfRun(t, run), "the stopped plugin was killed")
}

// TestSignalsEndTheRunLikeSIGTERM sends each signal that ends a runner in
// practice (Ctrl-C, a stop, a hang-up, a quit) while the fault is live:
// each reverts, writes the report, says the signal plainly and exits with
// the verdict aborted.
func TestSignalsEndTheRunLikeSIGTERM(t *testing.T) {
	for _, c := range []struct {
		sig  syscall.Signal
		says string
	}{
		{syscall.SIGINT, "interrupted by Ctrl-C (SIGINT)"},
		{syscall.SIGTERM, "interrupted by SIGTERM"},
		{syscall.SIGHUP, "interrupted by SIGHUP"},
		{syscall.SIGQUIT, "interrupted by SIGQUIT"},
	} {
		t.Run(c.sig.String(), func(t *testing.T) {
			tg := startTarget(t, "-timeout", "5s")
			exp := writeLiveness(t, tg, livenessOpts{name: "signalled"})
			stateDir, reportDir := t.TempDir(), t.TempDir()
			run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
			waitInjected(t, run, stateDir)
			require.NoError(t, run.cmd.Process.Signal(c.sig))
			require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "exit code after %s\nstdout:\n%s\nstderr:\n%s", c.sig, run.stdout, run.stderr)

			rec := readRecord(t, reportDir)
			require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
			require.Contains(t, rec.Reason, c.says, "the report says which signal stopped the run, plainly")
			require.Len(t, rec.Faults, 1)
			require.Equal(t, "reverted", rec.Faults[0].State, "the fault is reverted (error: %s)", rec.Faults[0].Error)
			require.Empty(t, rec.Leftovers)
			requireNothingLeft(t, exp)
			require.Empty(t, openEntries(t, stateDir), "the ledger holds nothing open")
		})
	}
}

// TestPluginStopToFaultGone measures, with the real latency plugin, the
// time from the plugin process being stopped (SIGSTOP) mid-fault to the
// fault being gone (the proxy's port refuses connections). Goal: at most
// the lease TTL plus 1s. It runs only under `make bench` (CHAOS_BENCH): it
// measures, it does not judge.
func TestPluginStopToFaultGone(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CHAOS_BENCH"))
	if n <= 0 {
		t.Skip("a benchmark: `make bench` runs it with CHAOS_BENCH")
	}
	const ttl = 3 * time.Second
	runs := max(n/20, 3) // each costs a lease TTL and a few seconds
	var took []time.Duration
	for i := range runs {
		tg := startTarget(t, "-timeout", "5s")
		exp := writeLiveness(t, tg, livenessOpts{name: fmt.Sprintf("stop-%d", i), leaseTTL: ttl.String()})
		stateDir := t.TempDir()
		run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
		waitInjected(t, run, stateDir)
		plugin := pluginOf(t, run)
		stopped := time.Now()
		require.NoError(t, syscall.Kill(plugin.pid, syscall.SIGSTOP))
		require.True(t, poll(waitLimit, func() bool { return refused(tg.proxy) }), "the proxy goes away")
		took = append(took, time.Since(stopped))
		run.exitCode(t)
		_ = syscall.Kill(plugin.pid, syscall.SIGKILL)
	}
	slices.Sort(took)
	fmt.Printf("plugin-stop-to-fault-gone leaseTTL=%s n=%d min=%s median=%s max=%s (goal <= %s)\n", ttl, len(took),
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), ttl+time.Second)
}
