package e2e

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// The tests of this file check the safety promises on the real binaries:
// whatever ends a run (a SIGKILL at any moment, a budget, a second run, the
// kill switch, a dry run), nothing is left listening, no plugin process is
// left running, and the ledger ends clean.

// leaseBound is the promise for a runner that dies: within the lease (the
// default of 10s, which these experiments keep) plus 2s, no fault of it is
// left. It is the only time bound these tests assert; every other wait is
// bounded by waitLimit only.
const leaseBound = 10*time.Second + 2*time.Second

// TestCrashLeavesNothing SIGKILLs the runner at random moments of its life
// and checks, for each, that the plugin process and the proxy are gone
// within leaseBound, that `chaos recover` reverts what the ledger holds and
// is idempotent, and that the target can be used again afterwards.
//
// CHAOS_CRASH_POINTS sets how many runs are killed (20 by default; `make
// bench` asks for more). The total of leftovers is logged as
// "crash points: N, leftovers: M" for the benchmark to read.
func TestCrashLeavesNothing(t *testing.T) {
	n := 20
	if s := os.Getenv("CHAOS_CRASH_POINTS"); s != "" {
		var err error
		n, err = strconv.Atoi(s)
		require.NoError(t, err, "CHAOS_CRASH_POINTS is a number of crash points")
		require.Positive(t, n, "CHAOS_CRASH_POINTS is a number of crash points")
	}
	// Each crash point has its own demo, ports and state directory, so a
	// few run at once; more would only make a two-core machine slower.
	const concurrent = 4
	moments := crashMoments()
	var leftovers atomic.Int64
	sem := make(chan struct{}, concurrent)
	var wg sync.WaitGroup
	for i := range n {
		// Every kind of moment gets its share of the points; where within
		// it the kill lands is random.
		m := moments[i%len(moments)]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("%03d-%s", i, m.name), func(t *testing.T) {
				crashOnce(t, m, &leftovers)
			})
		})
	}
	wg.Wait()
	t.Logf("crash points: %d, leftovers: %d", n, leftovers.Load())
	require.Zero(t, leftovers.Load(), "no crash point may leave a fault, a plugin process or an open ledger entry behind")
}

// crashMoment is a moment in a runner's life at which the test kills it.
type crashMoment struct {
	name string
	// wait returns when the moment has come. It may fail the test if the
	// moment never comes.
	wait func(t *testing.T, run *process, tg target, stateDir string)
}

func crashMoments() []crashMoment {
	jitter := func(max time.Duration) { <-time.After(rand.N(max)) }
	return []crashMoment{
		{"before-plugin", func(*testing.T, *process, target, string) {}},
		{"plugin-started", func(t *testing.T, run *process, _ target, _ string) {
			require.True(t, poll(waitLimit, func() bool { return len(pluginsOfRun(t, run)) > 0 }),
				"the runner starts its plugin\nstderr:\n%s", run.stderr)
		}},
		{"prepared", func(t *testing.T, run *process, tg target, _ string) {
			require.True(t, poll(waitLimit, func() bool { return !refused(tg.proxy) }),
				"the runner has the plugin stand the proxy on %s\nstderr:\n%s", tg.proxy, run.stderr)
			jitter(100 * time.Millisecond)
		}},
		{"injecting", func(t *testing.T, run *process, _ target, _ string) {
			// The engine logs `inject` just before it writes the intent and
			// asks the plugin: this is the moment of the race between the
			// two.
			run.waitLine(t, run.stderr, "msg=inject")
			jitter(20 * time.Millisecond)
		}},
		{"injected", func(t *testing.T, run *process, _ target, stateDir string) {
			waitInjected(t, run, stateDir)
			jitter(time.Second)
		}},
		{"random", func(*testing.T, *process, target, string) { jitter(3 * time.Second) }},
	}
}

// crashOnce kills one runner at moment m and checks what is left. Things
// left behind are counted in leftovers as well as failing the test, so the
// total is known even when many points fail.
func crashOnce(t *testing.T, m crashMoment, leftovers *atomic.Int64) {
	tg := startTarget(t, "-timeout", "5s")
	stateDir := t.TempDir()
	exp := writeExperiment(t, tg, experimentOpts{name: "crash-" + m.name})

	run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
	// A plugin left behind is killed when the test ends, so that one
	// failed point does not disturb the others.
	t.Cleanup(func() {
		for _, p := range pluginsOfRun(t, run) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
	m.wait(t, run, tg, stateDir)
	select {
	case <-run.exited:
		require.FailNowf(t, "the run ended before the test could kill it", "%v\nstdout:\n%s\nstderr:\n%s", run.err, run.stdout, run.stderr)
	default:
	}
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL), "kill the runner")
	killed := time.Now()
	run.exitCode(t)
	requireKilled(t, run)

	// The promise: within the lease and 2s, nothing of the run is live.
	var plugins []pluginProcess
	proxyUp := false
	clean := poll(leaseBound-time.Since(killed), func() bool {
		plugins = pluginsOfRun(t, run)
		proxyUp = !refused(tg.proxy)
		return !proxyUp && len(plugins) == 0
	})
	if clean {
		t.Logf("nothing of the run was live %s after the kill", time.Since(killed).Round(time.Millisecond))
	} else {
		n := len(plugins)
		if proxyUp {
			n++
		}
		leftovers.Add(int64(n))
		t.Errorf("%s after the runner was killed, something is left: proxy on %s listening: %v; plugin processes: %v\nstderr of the run:\n%s",
			leaseBound, tg.proxy, proxyUp, plugins, run.stderr)
	}

	// The ledger may hold the run's entries; until they are recovered a
	// new run on the target must be refused, and told what to do.
	open := openEntries(t, stateDir)
	t.Logf("the ledger holds %d open entries after the crash", len(open))
	short := writeExperiment(t, tg, experimentOpts{name: "after-crash", faultFor: "1s"})
	if len(open) > 0 {
		again := start(t, built.chaos, "run", "--state-dir", stateDir, short.File)
		require.Equalf(t, reports.Refused.ExitCode(), again.exitCode(t),
			"a run on a target the ledger holds open is refused\nstdout:\n%s\nstderr:\n%s", again.stdout, again.stderr)
		require.Contains(t, again.stdout.String()+again.stderr.String(), "chaos recover", "the refusal says to run `chaos recover`")
		require.Empty(t, pluginsOfRun(t, again), "the refused run left no plugin process")
	}

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover after a crash\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	for _, e := range open {
		out := rec.stdout.String()
		require.Truef(t, strings.Contains(out, "reverted "+e.ID) || strings.Contains(out, "closed "+e.ID),
			"recover says what it did with entry %s (state %s)\nstdout:\n%s", e.ID, e.State, out)
	}
	again := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, again.exitCode(t), "chaos recover a second time\nstdout:\n%s\nstderr:\n%s", again.stdout, again.stderr)
	require.Contains(t, again.stdout.String(), "nothing to recover", "recover is idempotent: the second one finds nothing")
	if left := openEntries(t, stateDir); len(left) > 0 {
		leftovers.Add(int64(len(left)))
		t.Errorf("after chaos recover the ledger still holds %d open entries: %+v", len(left), left)
	}

	// The target is free again: the kernel released the dead run's lock,
	// and the ledger no longer holds it.
	next := start(t, built.chaos, "run", "--state-dir", stateDir, short.File)
	require.Equalf(t, 0, next.exitCode(t), "a run on the target after recover passes\nstdout:\n%s\nstderr:\n%s", next.stdout, next.stderr)
	requireRefused(t, tg.proxy)
	require.Empty(t, pluginsOfRun(t, next), "the run after recover left no plugin process")
	require.Empty(t, openEntries(t, stateDir), "the run after recover closed its ledger entries")
}

// TestAbortOnBudget injects latency beyond the front's timeout with a budget
// that forbids any answer but 200: the budget aborts the run (exit 2), the
// report names the condition, and everything is reverted.
func TestAbortOnBudget(t *testing.T) {
	// The demo's own timeout to its backend (250ms) is what the fault
	// breaks: 300ms each way makes the front answer 504.
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{
		name: "budget-abort", delay: "300ms", abortWhen: []string{"front.status != 200"},
	})
	stateDir, reportDir := t.TempDir(), t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
	code := run.exitCode(t)
	require.Equalf(t, reports.Aborted.ExitCode(), code, "exit code of a run the budget stopped\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)

	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Contains(t, rec.Reason, "front.status != 200", "the reason names the budget condition that held")
	require.NotEmpty(t, events(rec, reports.EventAbort, "budget"), "the timeline records the budget's abort")
	require.NotNil(t, rec.TimeToSafety, "a budget abort records its time to safety")
	require.Len(t, rec.Faults, 1)
	require.Equal(t, "reverted", rec.Faults[0].State, "the budget abort reverted the fault (error: %s)", rec.Faults[0].Error)
	require.Empty(t, rec.Leftovers, "a budget abort leaves nothing behind")
	requireNothingLeft(t, exp)
	require.Empty(t, openEntries(t, stateDir), "the ledger holds nothing open after the abort")
}

// TestSecondRunOnSameTargetIsRefused starts a long run and, while its fault
// is live, a second run on the same target with the same state directory:
// the second is refused and names the first, which goes on unharmed until it
// is interrupted.
func TestSecondRunOnSameTargetIsRefused(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	first := writeExperiment(t, tg, experimentOpts{name: "first"})
	second := writeExperiment(t, tg, experimentOpts{name: "second", delay: "20ms"})
	stateDir, reportDir := t.TempDir(), t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, first.File)
	runID := logField(t, run.waitLine(t, run.stderr, "msg=inject"), "run")

	other := start(t, built.chaos, "run", "--state-dir", stateDir, second.File)
	require.Equalf(t, reports.Refused.ExitCode(), other.exitCode(t),
		"a second run on a target another run holds is refused\nstdout:\n%s\nstderr:\n%s", other.stdout, other.stderr)
	out := other.stdout.String() + other.stderr.String()
	require.Contains(t, out, safety.ErrTargetLocked.Error(), "the refusal says the target is locked")
	require.Contains(t, out, runID, "the refusal names the run that holds the target")
	require.Empty(t, pluginsOfRun(t, other), "the refused run left no plugin process")

	select {
	case <-run.exited:
		require.FailNowf(t, "the first run ended when the second was refused", "%v\nstdout:\n%s\nstderr:\n%s", run.err, run.stdout, run.stderr)
	default:
	}
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGINT), "interrupt the first run")
	require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "exit code of the interrupted first run\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict of the first run (reason: %s)", rec.Reason)
	require.Len(t, rec.Faults, 1)
	require.Equal(t, "reverted", rec.Faults[0].State, "the first run's fault is reverted (error: %s)", rec.Faults[0].Error)
	requireNothingLeft(t, first)
	require.Empty(t, openEntries(t, stateDir), "the ledger holds nothing open after both runs")
}

// TestKillSwitchAbortsRun engages the kill switch while a fault is live: the
// run aborts with the operator's reason, new runs are refused until the
// switch is cleared, and a run after that goes ahead.
func TestKillSwitchAbortsRun(t *testing.T) {
	const reason = "game day over"
	tg := startTarget(t, "-timeout", "5s")
	exp := writeExperiment(t, tg, experimentOpts{name: "kill-switch"})
	stateDir, reportDir := t.TempDir(), t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp.File)
	run.waitLine(t, run.stderr, "msg=inject")
	abort := start(t, built.chaos, "abort", "--state-dir", stateDir, "--reason", reason)
	require.Equalf(t, 0, abort.exitCode(t), "chaos abort\nstdout:\n%s\nstderr:\n%s", abort.stdout, abort.stderr)

	require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "exit code of a run the kill switch stopped\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Aborted, rec.Verdict, "verdict in report.json (reason: %s)", rec.Reason)
	require.Contains(t, rec.Reason, reason, "the report gives the operator's reason")
	require.Len(t, rec.Faults, 1)
	// As in TestInterruptDuringFaultPhaseAborts, the switch may land while
	// the plugin is injecting; then the fault never became live.
	if f := rec.Faults[0]; f.InjectedAt.IsZero() {
		require.Equal(t, "planned", f.State, "a fault stopped before its injection completed")
	} else {
		require.Equal(t, "reverted", f.State, "the kill switch reverted the fault (error: %s)", f.Error)
	}
	require.Empty(t, rec.Leftovers, "a kill-switch abort leaves nothing behind")
	requireNothingLeft(t, exp)
	require.Empty(t, openEntries(t, stateDir), "the aborted run closed every ledger entry: a new run must not need `chaos recover`")

	short := writeExperiment(t, tg, experimentOpts{name: "after-kill-switch", faultFor: "1s"})
	refused := start(t, built.chaos, "run", "--state-dir", stateDir, short.File)
	require.Equalf(t, reports.Refused.ExitCode(), refused.exitCode(t), "a run while the kill switch is engaged is refused\nstdout:\n%s\nstderr:\n%s", refused.stdout, refused.stderr)
	require.Contains(t, refused.stdout.String(), reason, "the refusal gives the reason the switch was engaged")
	require.Contains(t, refused.stdout.String(), "chaos abort --clear", "the refusal says how to release the switch")
	requireNothingLeft(t, short)

	release := start(t, built.chaos, "abort", "--state-dir", stateDir, "--clear")
	require.Equalf(t, 0, release.exitCode(t), "chaos abort --clear\nstdout:\n%s\nstderr:\n%s", release.stdout, release.stderr)
	next := start(t, built.chaos, "run", "--state-dir", stateDir, short.File)
	require.Equalf(t, 0, next.exitCode(t), "once the switch is cleared, a run goes ahead and passes\nstdout:\n%s\nstderr:\n%s", next.stdout, next.stderr)
	requireNothingLeft(t, short)
	require.Empty(t, openEntries(t, stateDir), "the ledger holds nothing open")
}

// TestRecoverAfterRunnerKilledWithPluginAlive kills the runner once its
// fault is recorded as live, and runs `chaos recover` at once, well within
// the lease. The plugin may or may not have reverted by itself by then;
// either way recover must revert every entry by its handle, say so, and
// leave nothing behind.
func TestRecoverAfterRunnerKilledWithPluginAlive(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	exp := writeExperiment(t, tg, experimentOpts{name: "recover-now"})
	stateDir := t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
	waitInjected(t, run, stateDir)
	open := openEntries(t, stateDir)
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL), "kill the runner")
	run.exitCode(t)
	requireKilled(t, run)

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	out := rec.stdout.String()
	require.NotEmpty(t, open, "the killed run had open ledger entries")
	for _, e := range open {
		require.Equal(t, safety.StateInjected, e.State, "entry %s was recorded live before the kill", e.ID)
		require.Contains(t, out, "reverted "+e.ID, "recover reverted entry %s by its handle", e.ID)
	}
	// recover has said every fault is reverted or already ended: that must
	// be true the moment it exits, whoever did it.
	requireRefused(t, tg.proxy)
	require.Empty(t, pluginsOfRun(t, run), "no plugin process of the killed run is left once recover says everything is reverted")
	requireNoPlugins(t)
	require.Empty(t, openEntries(t, stateDir), "recover leaves the ledger clean")
}

// TestDryRunInjectsNothing checks that a dry run prints the plan and never
// stands the proxy, starts nothing that stays, and records nothing in the
// ledger.
func TestDryRunInjectsNothing(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	exp := writeExperiment(t, tg, experimentOpts{name: "dry", abortWhen: []string{"front.status != 200"}})
	stateDir := t.TempDir()

	run := start(t, built.chaos, "run", "--dry-run", "--state-dir", stateDir, exp.File)
	// The proxy address is watched for as long as the dry run lives: it
	// must refuse every time.
	opened := false
	for done := false; !done; {
		select {
		case <-run.exited:
			done = true
		case <-time.After(5 * time.Millisecond):
		}
		opened = opened || !refused(tg.proxy)
	}
	require.Equalf(t, 0, run.exitCode(t), "exit code of a dry run\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	require.False(t, opened, "a dry run never stands the proxy on %s", tg.proxy)

	plan := run.stdout.String()
	for _, want := range []string{
		"nothing will be injected",
		"backend-link: endpoint, clients connect to " + tg.proxy, // the target
		"+200ms latency on backend-link",                         // the schedule
		"abort when front.status != 200",                         // the budget
		"maxDuration 20m",
	} {
		require.Contains(t, plan, want, "the plan says %q", want)
	}
	requireNothingLeft(t, exp)
	entries, err := filepath.Glob(filepath.Join(stateDir, "ledger", "*", "*.json"))
	require.NoError(t, err)
	require.Empty(t, entries, "a dry run records nothing in the ledger, not even a closed entry")
	require.Empty(t, openEntries(t, stateDir), "a dry run records nothing in the ledger")
}

// target is a demo-shop whose front calls its backend through proxy, an
// address where a chaos run stands the latency proxy.
type target struct {
	front, backend, proxy string
}

// startTarget starts a demo-shop on free ports whose front calls its
// backend through a free proxy address.
func startTarget(t *testing.T, args ...string) target {
	t.Helper()
	proxy := freeAddr(t)
	front, backend := startDemo(t, append([]string{"-front", "127.0.0.1:0", "-backend", "127.0.0.1:0",
		"-backend-url", "http://" + proxy}, args...)...)
	return target{front: front, backend: backend, proxy: proxy}
}

// experimentOpts vary the experiment of writeExperiment.
type experimentOpts struct {
	name      string
	delay     string   // the latency; 10ms, which the demo tolerates, if empty
	faultFor  string   // how long the fault lasts; 10m if empty
	abortWhen []string // budget.abortWhen
	listen    string   // the target's listen address; tg.proxy if empty
}

// writeExperiment writes an experiment against tg: a latency fault on
// the link from the front to its backend, 200ms into the fault phase. By
// default the fault lasts ten minutes, far longer than any test may run,
// so that only what the test does ends the run.
func writeExperiment(t *testing.T, tg target, o experimentOpts) *experiments.Experiment {
	t.Helper()
	if o.delay == "" {
		o.delay = "10ms"
	}
	if o.faultFor == "" {
		o.faultFor = "10m"
	}
	budget := ""
	if len(o.abortWhen) > 0 {
		quoted := make([]string, len(o.abortWhen))
		for i, x := range o.abortWhen {
			quoted[i] = strconv.Quote(x)
		}
		budget = fmt.Sprintf("  budget:\n    abortWhen: [%s]\n", strings.Join(quoted, ", "))
	}
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: %s
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: The front answers 200 while its backend link is slower.
  targets:
    backend-link:
      endpoint: {listen: %q, upstream: %q}
  probes:
    front:
      http: {url: %q}
      every: 100ms
      timeout: 10s
  steadyState:
    - front.status == 200
  faults:
    - plugin: latency
      target: backend-link
      with: {delay: %s}
      after: 200ms
      for: %s
%s  safety:
    maxDuration: 20m
`, o.name, cmp.Or(o.listen, tg.proxy), tg.backend, "http://"+tg.front+"/health", o.delay, o.faultFor, budget)
	path := filepath.Join(t.TempDir(), o.name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	exp, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return exp
}

// poll checks cond every few milliseconds until it holds (true) or limit
// has passed (false). It is for state nobody announces: a port, /proc, the
// ledger on disk.
func poll(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
}

// refused reports whether addr refuses connections right now.
func refused(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// pluginsOfRun lists the live plugin processes that the chaos process run
// started. They are found by the environment they inherited (start gives
// every process a state home of its own), not by their parent: a plugin
// whose runner was killed has been re-parented.
func pluginsOfRun(t *testing.T, run *process) []pluginProcess {
	t.Helper()
	var mark string
	for _, kv := range run.cmd.Env {
		if strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			mark = kv // the last one wins, as in the process itself
		}
	}
	require.NotEmpty(t, mark, "start gives every process a state home of its own")
	var mine []pluginProcess
	for _, p := range pluginProcesses(t) {
		// A process gone meanwhile (or a zombie) has no environment left.
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.pid))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if kv == mark {
				mine = append(mine, p)
				break
			}
		}
	}
	return mine
}

// requireKilled checks that run, which has exited, died of SIGKILL: the
// crash was the test's, not a way the run ended by itself.
func requireKilled(t *testing.T, run *process) {
	t.Helper()
	var ee *exec.ExitError
	require.ErrorAs(t, run.err, &ee, "the runner died of the test's SIGKILL")
	ws, ok := ee.Sys().(syscall.WaitStatus)
	require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the runner died of the test's SIGKILL, not %v", run.err)
}

// openEntries reads the ledger of stateDir from disk and returns the
// entries not yet reverted: what `chaos recover` still has to do.
func openEntries(t *testing.T, stateDir string) []safety.Entry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, "ledger", "*.json"))
	require.NoError(t, err)
	var open []safety.Entry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // reverted and moved to done/ meanwhile
		}
		require.NoError(t, err, "read ledger entry %s", f)
		var e safety.Entry
		require.NoError(t, json.Unmarshal(data, &e), "ledger entry %s is JSON:\n%s", f, data)
		if e.State != safety.StateReverted {
			open = append(open, e)
		}
	}
	return open
}

// waitInjected waits until the ledger records run's first fault as live,
// with its handle: from then on only its revert can close the entry.
func waitInjected(t *testing.T, run *process, stateDir string) {
	t.Helper()
	// The engine logs `inject` before it writes the intent.
	run.waitLine(t, run.stderr, "msg=inject")
	require.True(t, poll(waitLimit, func() bool {
		for _, e := range openEntries(t, stateDir) {
			if strings.HasSuffix(e.ID, "/fault-0") && e.State == safety.StateInjected && e.Handle != "" {
				return true
			}
		}
		return false
	}), "the ledger records the fault as injected\nstderr:\n%s", run.stderr)
}

// logField returns the value of key in a logfmt line.
func logField(t *testing.T, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	require.FailNowf(t, "a log line lacks a field", "no %s= in %q", key, line)
	return ""
}
