package e2e

import (
	"net"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// TestOneListenerNamedTwoWaysIsLockedOnce: targets are locked by what their
// plugin resolves them to, not by what the file says. A run faulting
// 127.0.0.1:P holds the lock while its fault is live; a second file that
// names the same listener as 0.0.0.0:P (which binds every local address on
// P, 127.0.0.1 among them) is refused as locked, and the first run's report
// names the resolved address.
func TestOneListenerNamedTwoWaysIsLockedOnce(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	_, port, err := net.SplitHostPort(tg.proxy)
	require.NoError(t, err)
	first := writeExperiment(t, tg, experimentOpts{name: "loopback"})
	second := writeExperiment(t, tg, experimentOpts{name: "wildcard", listen: net.JoinHostPort("0.0.0.0", port)})
	stateDir, reportDir, otherReports := t.TempDir(), t.TempDir(), t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, first.File)
	run.waitLine(t, run.stderr, "msg=inject")

	other := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", otherReports, second.File)
	require.Equalf(t, reports.Refused.ExitCode(), other.exitCode(t),
		"a run on 0.0.0.0:%s while another holds 127.0.0.1:%s is refused\nstdout:\n%s\nstderr:\n%s", port, port, other.stdout, other.stderr)
	refusal := readRecord(t, otherReports)
	require.Equal(t, reports.Refused, refusal.Verdict, "the refused run's report says so (reason: %s)", refusal.Reason)
	require.Equal(t, reports.Cause("target-locked"), refusal.Cause, "the refusal is the lock, not anything else")
	require.Empty(t, pluginsOfRun(t, other), "the refused run left no plugin process")

	require.NoError(t, run.cmd.Process.Signal(syscall.SIGINT), "interrupt the first run")
	require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "exit code of the interrupted first run\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	require.Len(t, rec.Faults, 1)
	require.Equal(t, []string{net.JoinHostPort("127.0.0.1", port)}, rec.Faults[0].Resolved, "the report names the address the target resolved to")
	requireNothingLeft(t, first)
	require.Empty(t, openEntries(t, stateDir), "the ledger holds nothing open after both runs")
}
