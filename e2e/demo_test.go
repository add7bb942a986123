package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// examples is where the example experiments live, from this package.
var examplesDir = filepath.Join("..", "experiments", "examples")

// TestExamples runs both example experiments against the demo service on
// its default ports, as `make demo` does, and checks what each run says and
// what it leaves behind.
func TestExamples(t *testing.T) {
	// The example files name the demo's default ports; the demo itself takes
	// its defaults, so the test depends on nothing but the files.
	requireFree(t, "127.0.0.1:18080", "127.0.0.1:18081", "127.0.0.1:18082")
	startDemo(t)

	for _, tc := range []struct {
		file string
		want reports.Verdict
	}{
		{"demo-tolerates-small-latency.yaml", reports.Passed},
		{"demo-breaks-beyond-timeout.yaml", reports.Failed},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			path, err := filepath.Abs(filepath.Join(examplesDir, tc.file))
			require.NoError(t, err)
			// The file itself says what the report must be addressed to and
			// which faults it must account for.
			exp, err := experiments.Load(path, experiments.Options{})
			require.NoError(t, err, "the example file is valid")
			dir := t.TempDir()

			run := start(t, built.chaos, "run", "--report-dir", dir, path)
			code := run.exitCode(t)
			require.Equalf(t, tc.want.ExitCode(), code, "exit code of a %s run\nstdout:\n%s\nstderr:\n%s", tc.want, run.stdout, run.stderr)

			rec := readRecord(t, dir)
			require.Equal(t, tc.want, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
			require.Contains(t, run.stdout.String(), fmt.Sprintf("%s: %s", exp.Metadata.Name, tc.want), "stdout says the verdict")
			require.Equal(t, exp.Metadata.Owner.Team, rec.Experiment.Owner.Team, "the report is addressed to the owning team")
			requireCleanRecord(t, exp, rec)

			md := readFile(t, dir, reports.MarkdownFile)
			require.Contains(t, md, tc.want.Meaning(), "report.md says what the verdict means for the owners")
			require.Contains(t, md, "To: "+exp.Metadata.Owner.Team, "report.md is addressed to the owning team")

			switch tc.want {
			case reports.Passed:
				for _, c := range rec.SteadyState {
					require.Equalf(t, c.Evaluated, c.Held, "in a passed run every steady-state check held (%s, %s)", c.Phase, c.Expression)
				}
			case reports.Failed:
				breach := firstBreach(t, rec, reports.During)
				require.Contains(t, md, "What broke first", "report.md of a failed run says what broke first")
				require.Contains(t, md, breach.Expression, "report.md names the expression that broke first")
				require.Contains(t, md, breach.Detail, "report.md says what was observed when it broke")
				require.Contains(t, rec.Reason, breach.Expression, "the reason of a failed run names the first breach")
			}

			requireNothingLeft(t, exp)
		})
	}
}

// TestInterruptDuringFaultPhaseAborts sends SIGINT, as Ctrl-C does, while a
// fault is live: the run reverts, says aborted (exit 2), and leaves neither
// the proxy nor the plugin behind.
func TestInterruptDuringFaultPhaseAborts(t *testing.T) {
	proxy := freeAddr(t)
	front, backend := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0",
		"-backend-url", "http://"+proxy, "-timeout", "5s")
	// The fault lasts far longer than the test may: only the interrupt can
	// end this run, so no timing decides the outcome.
	exp := writeExperiment(t, target{front: front, backend: backend, proxy: proxy}, experimentOpts{name: "interrupted"})
	dir := t.TempDir()

	run := start(t, built.chaos, "run", "--report-dir", dir, exp.File)
	run.waitLine(t, run.stderr, "msg=inject")
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGINT), "interrupt the run")

	code := run.exitCode(t)
	require.Equalf(t, reports.Aborted.ExitCode(), code, "exit code after SIGINT\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, dir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Empty(t, rec.Leftovers, "an interrupted run reverts everything it did")
	require.NotEmpty(t, events(rec, reports.EventAbort, ""), "the timeline records the abort")
	require.Len(t, rec.Faults, 1)
	f := rec.Faults[0]
	// The engine logs `inject` just before it asks the plugin, so the
	// interrupt may land while the plugin is injecting; then the fault is
	// never recorded as injected. Either way it must not be live.
	if f.InjectedAt.IsZero() {
		require.Equal(t, "planned", f.State, "a fault interrupted before its injection completed")
	} else {
		require.Equal(t, "reverted", f.State, "the interrupted run reverted its fault (error: %s)", f.Error)
		require.Len(t, events(rec, reports.EventRevert, "latency"), 1, "the timeline records the revert")
	}
	requireNothingLeft(t, exp)
}

// TestPluginKilledMidFaultIsError kills the plugin process while its fault
// is live. The runner cannot confirm the revert, so the run ends in error
// (exit 4) and says which fault may be left behind.
func TestPluginKilledMidFaultIsError(t *testing.T) {
	proxy := freeAddr(t)
	front, backend := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0",
		"-backend-url", "http://"+proxy, "-timeout", "5s")
	// The fault lasts far longer than the test may: the run must notice the
	// dead plugin by itself, not at the fault's scheduled end.
	exp := writeExperiment(t, target{front: front, backend: backend, proxy: proxy}, experimentOpts{name: "plugin-killed"})
	dir := t.TempDir()

	run := start(t, built.chaos, "run", "--report-dir", dir, exp.File)
	run.waitLine(t, run.stderr, "msg=inject")
	plugin := pluginOf(t, run)
	require.NoError(t, syscall.Kill(plugin.pid, syscall.SIGKILL), "kill the plugin process %d", plugin.pid)

	code := run.exitCode(t)
	require.Equalf(t, reports.Error.ExitCode(), code, "exit code after the plugin died\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, dir)
	require.Equal(t, reports.Error, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Contains(t, rec.Reason, "latency", "the reason names the plugin that broke")
	require.Len(t, rec.Faults, 1)
	f := rec.Faults[0]
	// As in the interrupt test, the kill may land during the injection
	// itself: then the injection failed; otherwise the revert did.
	if f.InjectedAt.IsZero() {
		require.Equal(t, "failed", f.State, "a fault whose plugin died while injecting")
	} else {
		require.Equal(t, "left", f.State, "a fault whose plugin died before the revert cannot be confirmed reverted")
		require.NotEmpty(t, rec.Leftovers, "the report lists the fault it could not confirm reverted")
		named := false
		for _, l := range rec.Leftovers {
			named = named || strings.Contains(l, "latency")
			require.Contains(t, run.stdout.String(), "LEFT BEHIND: "+l, "stdout lists every leftover too")
		}
		require.True(t, named, "a leftover names the plugin: %q", rec.Leftovers)
	}
	require.NotEmpty(t, f.Error, "the fault records what went wrong")
	requireNothingLeft(t, exp)
}

// requireCleanRecord checks what every completed run records: probe
// observations, and for each fault one inject and one revert, the fault
// reverted, nothing left behind.
func requireCleanRecord(t *testing.T, exp *experiments.Experiment, rec *reports.Record) {
	t.Helper()
	for name := range exp.Spec.Probes {
		require.NotEmpty(t, events(rec, reports.EventProbe, name), "the timeline has observations of probe %s", name)
	}
	require.Len(t, rec.Faults, len(exp.Spec.Faults), "the report accounts for every planned fault")
	for i, f := range rec.Faults {
		require.Equal(t, "reverted", f.State, "fault %d (%s) ends reverted (error: %s)", i, f.Plugin, f.Error)
		require.False(t, f.InjectedAt.IsZero(), "fault %d was injected", i)
		require.False(t, f.RevertedAt.Before(f.InjectedAt), "fault %d was reverted after it was injected", i)
	}
	for _, plugin := range pluginsOf(exp) {
		n := 0
		for _, f := range exp.Spec.Faults {
			if f.Plugin == plugin {
				n++
			}
		}
		require.Len(t, events(rec, reports.EventInject, plugin), n, "the timeline has one inject per %s fault", plugin)
		require.Len(t, events(rec, reports.EventRevert, plugin), n, "the timeline has one revert per %s fault", plugin)
	}
	require.Empty(t, rec.Leftovers, "a completed run leaves nothing behind")
}

// requireNothingLeft checks the machine, not the report: every proxy address
// of the experiment refuses connections, and no plugin process is alive.
func requireNothingLeft(t *testing.T, exp *experiments.Experiment) {
	t.Helper()
	for _, name := range sortedKeys(exp.Spec.Targets) {
		if ep := exp.Spec.Targets[name].Endpoint; ep != nil {
			requireRefused(t, ep.Listen)
		}
	}
	requireNoPlugins(t)
}

func readRecord(t *testing.T, dir string) *reports.Record {
	t.Helper()
	var rec reports.Record
	require.NoError(t, json.Unmarshal([]byte(readFile(t, dir, reports.JSONFile)), &rec), "report.json decodes into reports.Record")
	return &rec
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err, "the run wrote %s", name)
	return string(b)
}

// events returns the timeline events of a kind, from source if it is set.
func events(rec *reports.Record, kind reports.EventKind, source string) []reports.Event {
	var out []reports.Event
	for _, e := range rec.Timeline {
		if e.Kind == kind && (source == "" || e.Source == source) {
			out = append(out, e)
		}
	}
	return out
}

// firstBreach returns the check of phase that broke first.
func firstBreach(t *testing.T, rec *reports.Record, phase reports.Phase) reports.Check {
	t.Helper()
	var first *reports.Check
	for i, c := range rec.SteadyState {
		if c.Phase == phase && c.FirstBreach != nil && (first == nil || *c.FirstBreach < *first.FirstBreach) {
			first = &rec.SteadyState[i]
		}
	}
	require.NotNil(t, first, "a failed run records a steady-state breach during the faults")
	return *first
}

func pluginsOf(exp *experiments.Experiment) []string {
	seen := map[string]bool{}
	for _, f := range exp.Spec.Faults {
		seen[f.Plugin] = true
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
