package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

const runnerFile = `apiVersion: chaos/v1
kind: Experiment
metadata:
  name: runner-test
  owner: {team: testers}
spec:
  hypothesis: the service stays up
  targets:
    link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}
  probes:
    svc: {http: {url: http://127.0.0.1:3/}, every: 1s, timeout: 1s}
  steadyState:
    - svc.status == 200
  faults:
    - {plugin: fake, target: link, after: 0s, for: 10s}
`

// newRunner is a Runner on a private state directory whose reports go to a
// directory of their own.
func newRunner(t *testing.T, w *world) (*engine.Runner, string) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	return &engine.Runner{StateDir: state, Plugins: w, PluginNames: []string{"fake"}, ReportDir: filepath.Join(dir, "reports")}, dir
}

func readReport(t *testing.T, dir string) reports.Record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "reports", reports.JSONFile))
	require.NoError(t, err, "every record gets its report")
	var rec reports.Record
	require.NoError(t, json.Unmarshal(data, &rec))
	return rec
}

func TestRunnerInvalidFileIsARecordWithItsReport(t *testing.T) {
	w := newWorld()
	rn, dir := newRunner(t, w)
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("apiVersion: chaos/v1\nkind: Experiment\nspec: {}\n"), 0o600))
	rec := rn.RunFile(t.Context(), path)
	require.Equal(t, reports.Invalid, rec.Verdict, rec.Reason)
	require.Equal(t, engine.CauseInvalidFile, rec.Cause)
	got := readReport(t, dir)
	require.Equal(t, engine.CauseInvalidFile, got.Cause, "the report says the same as the record")
	require.Zero(t, w.prepared+w.injected, "an invalid file touches nothing")
}

func TestRunnerKillSwitchRefusesWithItsReport(t *testing.T) {
	w := newWorld()
	rn, dir := newRunner(t, w)
	path := filepath.Join(dir, "exp.yaml")
	require.NoError(t, os.WriteFile(path, []byte(runnerFile), 0o600))
	require.NoError(t, safety.Engage(rn.StateDir, "incident 4711"))
	rec := rn.RunFile(t.Context(), path)
	require.Equal(t, reports.Refused, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("kill-switch"), rec.Cause)
	require.Equal(t, "planned", rec.Faults[0].State, "the refusal lists what would have been done")
	require.Equal(t, reports.Cause("kill-switch"), readReport(t, dir).Cause)
	require.Zero(t, w.prepared+w.injected, "a refused run touches nothing")

	err := rn.DryRun(t.Context(), path, nil)
	pe := (*engine.PlanError)(nil)
	require.ErrorAs(t, err, &pe, "a dry run says what the run would get")
	require.Equal(t, reports.Refused, pe.Verdict)
}

func TestRunnerRunsAFileAndTakesItsLocks(t *testing.T) {
	w := newWorld()
	rn, dir := newRunner(t, w)
	path := filepath.Join(dir, "exp.yaml")
	require.NoError(t, os.WriteFile(path, []byte(runnerFile), 0o600))
	// Another run holds the target: the runner asks safety for the lock.
	l, err := safety.LockTargets(rn.StateDir, []string{"endpoint:127.0.0.1:1"}, "other-run")
	require.NoError(t, err)
	rec := rn.RunFile(t.Context(), path)
	require.NoError(t, l.Release())
	require.Equal(t, reports.Refused, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("target-locked"), rec.Cause)
	require.Zero(t, w.prepared+w.injected)
}
