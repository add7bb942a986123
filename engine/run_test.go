package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// world is a fake system under test: the probe answers from it, and the
// fake plugin changes it. It is the pure logic of the lifecycle that these
// tests check; the real plugins and probes are tested against real things
// in their own packages and in e2e.
type world struct {
	mu sync.Mutex
	// active faults by handle
	active map[string]bool
	// fragile: the service breaks while a fault is active.
	fragile bool
	// brokenBefore: the service is broken from the start.
	brokenBefore bool
	// slowWhenFaulted makes the probe observe a latency above the budget.
	slowWhenFaulted bool

	prepared, injected, reverted int
	injectErr, revertErr         error
	renewErr                     error
	problems                     []sdk.ParamProblem
	closed                       bool
	// injectedCh is closed at the first inject, for tests that act then.
	injectedCh chan struct{}
	// holdInject, when set, is waited for before an inject is confirmed.
	holdInject chan struct{}
	// done is the plugin's Done channel; dies closes it.
	done chan struct{}
	// log is the order of plugin and ledger calls, shared with fakeLedger.
	log []string
}

func newWorld() *world {
	return &world{active: map[string]bool{}, injectedCh: make(chan struct{}), done: make(chan struct{})}
}

func (w *world) record(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log = append(w.log, s)
}

func (w *world) faulted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.active {
		if a {
			return true
		}
	}
	return false
}

func (w *world) probe(context.Context) experiments.Observation {
	faulted := w.faulted()
	o := experiments.HTTPObservation{OK: true, Status: 200, Latency: time.Millisecond}
	if w.brokenBefore || (w.fragile && faulted) {
		o.Status = 503
	}
	if w.slowWhenFaulted && faulted {
		o.Latency = 5 * time.Second
	}
	return o
}

// Open implements engine.Plugins.
func (w *world) Open(context.Context, string) (engine.FaultPlugin, error) { return w, nil }

func (w *world) Describe(context.Context) (sdk.Description, error) {
	return sdk.Description{Name: "fake", Version: "1", TargetKinds: []string{sdk.KindEndpoint}, CanPrepare: true}, nil
}

func (w *world) Validate(context.Context, sdk.Request) ([]sdk.ParamProblem, error) {
	return w.problems, nil
}

func (w *world) Prepare(context.Context, sdk.Request) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prepared++
	w.log = append(w.log, "prepare")
	return sdk.PreparedPrefix + "link", nil
}

func (w *world) Inject(ctx context.Context, _ sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if w.holdInject != nil {
		select {
		case <-w.holdInject:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.injectErr != nil {
		return "", w.injectErr
	}
	w.injected++
	w.log = append(w.log, "inject")
	h := fmt.Sprintf("h%d", w.injected)
	w.active[h] = true
	if w.injected == 1 {
		close(w.injectedCh)
	}
	return h, nil
}

func (w *world) Revert(ctx context.Context, h string) (bool, error) {
	// A revert must never run under a cancelled context: that is the
	// promise that an abort cannot cancel its own revert.
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("revert under a cancelled context: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.revertErr != nil {
		return false, w.revertErr
	}
	was := w.active[h]
	delete(w.active, h)
	w.reverted++
	w.log = append(w.log, "revert")
	return was, nil
}

func (w *world) Renew(context.Context, string, time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.renewErr
}

func (w *world) Done() <-chan struct{} { return w.done }
func (w *world) Pid() int              { return 0 }

func (w *world) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
}

func (w *world) options() engine.Options {
	return engine.Options{
		Plugins: w,
		NewProber: func(string, *experiments.Probe) (engine.Prober, error) {
			return engine.ProberFunc(w.probe), nil
		},
	}
}

// experiment builds a small valid experiment; extra is appended to spec.
func experiment(t *testing.T, faults, extra string) *experiments.Experiment {
	t.Helper()
	src := `apiVersion: chaos/v1
kind: Experiment
metadata:
  name: engine-test
  owner: {team: testers}
spec:
  hypothesis: the service stays up
  targets:
    link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}
  probes:
    svc: {http: {url: http://127.0.0.1:3/}, every: 2ms, timeout: 1s}
  steadyState:
    - svc.status == 200
  faults:
` + faults + extra
	exp, err := experiments.Parse("engine-test.yaml", []byte(src), experiments.Options{MinProbeEvery: time.Millisecond})
	require.NoError(t, err, "the test experiment must be valid")
	return exp
}

const oneFault = "    - {plugin: fake, target: link, after: 0s, for: 40ms}\n"

func requireNothingLeft(t *testing.T, w *world) {
	t.Helper()
	require.False(t, w.faulted(), "every injected fault must be reverted")
	require.True(t, w.closed, "every plugin must be closed")
}

func TestRunPasses(t *testing.T) {
	w := newWorld()
	rec := runOnFakeClock(t, experiment(t, oneFault, ""), w.options(), 2*time.Millisecond)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("hypothesis-held"), rec.Cause)
	require.Equal(t, 1, w.injected)
	require.Equal(t, 1, w.prepared, "the target is prepared once before the steady state")
	require.Equal(t, "reverted", rec.Faults[0].State)
	requireNothingLeft(t, w)
	phases := map[reports.Phase]bool{}
	for _, c := range rec.SteadyState {
		phases[c.Phase] = true
		require.Equal(t, c.Evaluated, c.Held, "a passing run holds in every check")
	}
	require.Equal(t, map[reports.Phase]bool{reports.Before: true, reports.During: true, reports.After: true}, phases,
		"the steady state is checked before, during and after")
}

func TestRunNotSteadyBeforeInjectsNothing(t *testing.T) {
	w := newWorld()
	w.brokenBefore = true
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), w.options())
	require.Equal(t, reports.Failed, rec.Verdict)
	require.Equal(t, reports.Cause("not-steady-before"), rec.Cause)
	require.Zero(t, w.injected, "nothing may be injected when the steady state does not hold before")
	requireNothingLeft(t, w)
}

func TestRunFailsWhenSteadyStateBreaksDuringFaults(t *testing.T) {
	w := newWorld()
	w.fragile = true
	rec := runOnFakeClock(t, experiment(t, oneFault, ""), w.options(), 2*time.Millisecond)
	require.Equal(t, reports.Failed, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("steady-state-broke"), rec.Cause)
	var deviations int
	for _, e := range rec.Timeline {
		if e.Kind == reports.EventDeviation {
			deviations++
		}
	}
	require.Equal(t, 1, deviations, "a breach that lasts is recorded once, when it starts")
	requireNothingLeft(t, w)
}

func TestRunAbortsOnBudget(t *testing.T) {
	w := newWorld()
	w.slowWhenFaulted = true
	// A long fault: only the budget can end this run early.
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	budget := "  budget:\n    abortWhen:\n      - svc.latency > duration(\"1s\")\n  safety: {maxDuration: 2h}\n"
	rec := engine.Run(t.Context(), experiment(t, faults, budget), w.options())
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("budget"), rec.Cause)
	require.Contains(t, rec.Reason, `svc.latency > duration("1s")`, "the verdict names the condition that tripped")
	require.Equal(t, "reverted", rec.Faults[0].State)
	requireNothingLeft(t, w)
}

func TestRunInterruptReverts(t *testing.T) {
	w := newWorld()
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	ctx, cancel := context.WithCancelCause(t.Context())
	go func() {
		<-w.injectedCh
		cancel(engine.ErrInterrupted)
	}()
	rec := engine.Run(ctx, experiment(t, faults, "  safety: {maxDuration: 2h}\n"), w.options())
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("interrupted"), rec.Cause)
	requireNothingLeft(t, w)
}

// runOnFakeClock runs exp on a fake clock. Whenever every timer the run
// sets is pending (waiting is the run's maxDuration, its lease keeper, its
// fault loop and one per probe loop: the run has nothing left to do but
// wait for time), the clock moves by step. Nothing sleeps.
func runOnFakeClock(t *testing.T, exp *experiments.Experiment, opts engine.Options, step time.Duration) *reports.Record {
	t.Helper()
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	opts.Clock = fake
	if opts.EvalTimeout == 0 {
		// A stuck evaluation is tested on its own (hold_test.go); here the
		// clock may move while an expression is evaluated.
		opts.EvalTimeout = time.Hour
	}
	ctx, stop := context.WithCancel(t.Context())
	var driver sync.WaitGroup
	driver.Go(func() {
		waiting := 3 + len(exp.Spec.Probes)
		for fake.BlockUntil(ctx, waiting) == nil {
			fake.Advance(step)
		}
	})
	rec := engine.Run(t.Context(), exp, opts)
	stop()
	driver.Wait()
	return rec
}

func TestRunMaxDurationIsAHardCap(t *testing.T) {
	w := newWorld()
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	exp := experiment(t, faults, "  safety: {maxDuration: 2h}\n")
	// The file cannot set a cap shorter than its faults; the engine must
	// still honour one, so set it on the parsed experiment.
	exp.Spec.Safety.MaxDuration = 50 * time.Millisecond
	rec := runOnFakeClock(t, exp, w.options(), 10*time.Millisecond)
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("max-duration"), rec.Cause, "the cap, not the fault's end, stopped the run")
	require.Equal(t, 50*time.Millisecond, rec.EndedAt.Sub(rec.StartedAt), "on the fake clock the run ends exactly at its cap")
	requireNothingLeft(t, w)
}

// TestRunFollowsItsSchedule: on a fake clock, the fault is injected at its
// after and reverted at after+for, to the tick.
func TestRunFollowsItsSchedule(t *testing.T) {
	w := newWorld()
	exp := experiment(t, "    - {plugin: fake, target: link, after: 20ms, for: 40ms}\n", "")
	rec := runOnFakeClock(t, exp, w.options(), 2*time.Millisecond)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	f := rec.Faults[0]
	require.Equal(t, 20*time.Millisecond, f.InjectedAt.Sub(rec.StartedAt), "injected at its after")
	require.Equal(t, 60*time.Millisecond, f.RevertedAt.Sub(rec.StartedAt), "reverted at after+for")
	require.Equal(t, 20, f.Observations["svc"], "every 2ms tick inside the 40ms window observed the fault")
	requireNothingLeft(t, w)
}

func TestRunPluginGoneIsAnErrorWithLeftovers(t *testing.T) {
	w := newWorld()
	w.revertErr = fmt.Errorf("revert: %w", sdk.ErrPluginExited)
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), w.options())
	require.Equal(t, reports.Error, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("not-reverted"), rec.Cause)
	require.Len(t, rec.Leftovers, 2, "the report must say exactly what may be left: the fault and the preparation")
	require.Contains(t, rec.Leftovers[0], "fake on link (handle h1)")
	require.Contains(t, rec.Leftovers[1], "preparation of link")
	require.Contains(t, rec.Leftovers[0], "chaos recover")
	require.Equal(t, "left", rec.Faults[0].State)
}

func TestRunInjectFailureIsAnError(t *testing.T) {
	w := newWorld()
	w.injectErr = errors.New("no permission")
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), w.options())
	require.Equal(t, reports.Error, rec.Verdict)
	require.Equal(t, reports.Cause("inject-failed"), rec.Cause)
	require.Contains(t, rec.Reason, "no permission", "the plugin's own words reach the owner")
	require.Equal(t, "failed", rec.Faults[0].State)
	requireNothingLeft(t, w)
}

func TestRunInvalidParamsInjectNothing(t *testing.T) {
	w := newWorld()
	w.problems = []sdk.ParamProblem{{Param: "delay", Message: "delay is required"}}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), w.options())
	require.Equal(t, reports.Invalid, rec.Verdict)
	require.Equal(t, reports.Cause("invalid-params"), rec.Cause)
	require.True(t, strings.Contains(rec.Reason, "engine-test.yaml:") && strings.Contains(rec.Reason, "delay is required"),
		"the reason points at the file and the parameter: %s", rec.Reason)
	require.Zero(t, w.prepared+w.injected, "nothing may be prepared or injected for an invalid fault")
	requireNothingLeft(t, w)
}

func TestExitCodes(t *testing.T) {
	for v, code := range map[reports.Verdict]int{
		reports.Passed: 0, reports.Failed: 1, reports.Aborted: 2, reports.Invalid: 3, reports.Error: 4, reports.Refused: 5,
	} {
		require.Equal(t, code, v.ExitCode(), "DESIGN.md fixes the exit code of %s", v)
	}
}

// fakeLedger records the order of ledger calls in the world's log.
type fakeLedger struct {
	w    *world
	open []safety.Entry
}

func (l *fakeLedger) Intend(e safety.Entry) error {
	l.w.record("intend " + e.ID[strings.LastIndexByte(e.ID, '/')+1:])
	return nil
}
func (l *fakeLedger) Injected(string, string) error { l.w.record("injected"); return nil }
func (l *fakeLedger) Reverted(string) error         { l.w.record("reverted"); return nil }
func (l *fakeLedger) Note(string, string) error     { return nil }
func (l *fakeLedger) OpenFor([]string) ([]safety.Entry, error) {
	return l.open, nil
}

func TestLedgerIsWrittenBeforeInjectAndClosedAfterRevert(t *testing.T) {
	w := newWorld()
	opts := w.options()
	opts.Ledger = &fakeLedger{w: w}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	require.Equal(t, []string{
		"intend prepared-fake-link", "prepare", "injected",
		"intend fault-0", "inject", "injected",
		"revert", "reverted", // the fault
		"revert", "reverted", // the preparation, after the steady state after
	}, w.log,
		"the intent is on disk before the plugin is asked, and closed only after it confirmed the revert")
}

func TestOpenLedgerEntriesRefuseTheRun(t *testing.T) {
	w := newWorld()
	opts := w.options()
	opts.Ledger = &fakeLedger{w: w, open: []safety.Entry{{ID: "old/fault-0", Plugin: "fake", TargetKey: "endpoint:127.0.0.1:1"}}}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Refused, rec.Verdict, "open ledger entries are the environment saying no, not a bad file: %s", rec.Reason)
	require.Equal(t, reports.Cause("ledger-open"), rec.Cause)
	require.Contains(t, rec.Reason, "chaos recover", "the refusal says what to do")
	require.Zero(t, w.prepared+w.injected)
}

func TestLockedTargetRefusesTheRun(t *testing.T) {
	w := newWorld()
	opts := w.options()
	opts.LockTargets = func(keys []string, runID string) (func() error, error) {
		require.Equal(t, []string{"endpoint:127.0.0.1:1"}, keys)
		return nil, fmt.Errorf("%s: %w", keys[0], safety.ErrTargetLocked)
	}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Refused, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("target-locked"), rec.Cause)
	require.Zero(t, w.prepared+w.injected, "a locked target is never touched")
}

func TestLostLeaseIsAnError(t *testing.T) {
	w := newWorld()
	w.renewErr = fmt.Errorf("renew: %w", sdk.ErrUnknownHandle)
	opts := w.options()
	opts.LeaseTTL = 30 * time.Millisecond
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	rec := runOnFakeClock(t, experiment(t, faults, "  safety: {maxDuration: 2h}\n"), opts, 10*time.Millisecond)
	require.Equal(t, reports.Error, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("lease-lost"), rec.Cause)
	requireNothingLeft(t, w)
}

func TestPluginDeathMidFaultIsAnError(t *testing.T) {
	w := newWorld()
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	go func() {
		<-w.injectedCh
		w.mu.Lock()
		w.revertErr = fmt.Errorf("revert: %w", sdk.ErrPluginExited)
		w.mu.Unlock()
		close(w.done)
	}()
	rec := engine.Run(t.Context(), experiment(t, faults, "  safety: {maxDuration: 2h}\n"), w.options())
	require.Equal(t, reports.Error, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("plugin-exited"), rec.Cause)
	require.NotEmpty(t, rec.Leftovers, "the report says what the dead plugin may have left")
	require.Contains(t, rec.Leftovers[0], "plugin process exited")
}

func TestRunAbortsWhenErrorBudgetIsSpent(t *testing.T) {
	w := newWorld()
	w.fragile = true
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	// 99% over 10s allows 100ms of failure; the experiment may spend 10ms.
	budget := "  budget:\n    errorBudget: {slo: 99%, window: 10s, maxSpend: 10%}\n  safety: {maxDuration: 2h}\n"
	rec := engine.Run(t.Context(), experiment(t, faults, budget), w.options())
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("error-budget-spent"), rec.Cause)
	require.NotNil(t, rec.ErrorBudget)
	require.Greater(t, rec.ErrorBudget.Spent, rec.ErrorBudget.Allowance, "the run stops once it spent more than its share")
	requireNothingLeft(t, w)
}

func TestMaxTargetsRefusesTheRun(t *testing.T) {
	w := newWorld()
	rec := engine.Run(t.Context(), experiment(t, oneFault, "  safety: {maxTargets: 1}\n"), w.options())
	require.Equal(t, reports.Passed, rec.Verdict, "one target within a cap of one runs: %s", rec.Reason)

	exp := experiment(t, oneFault, "  safety: {maxTargets: 1}\n")
	// A second endpoint target and a fault on it: two targets, over the cap.
	exp.Spec.Targets["link2"] = &experiments.Target{Endpoint: &experiments.EndpointTarget{Listen: "127.0.0.1:5", Upstream: "127.0.0.1:6"}}
	exp.Spec.Faults = append(exp.Spec.Faults, &experiments.Fault{Plugin: "fake", Target: "link2", For: time.Second})
	w2 := newWorld()
	rec = engine.Run(t.Context(), exp, w2.options())
	require.Equal(t, reports.Refused, rec.Verdict, "more resolved things than maxTargets: the environment says no: %s", rec.Reason)
	require.Equal(t, reports.Cause("blast-radius"), rec.Cause)
	require.Zero(t, w2.prepared+w2.injected, "over the blast radius nothing is touched")
}

// TestRunNeverPassesAFaultNoProbeObserved: a probe whose interval is far
// longer than the fault makes its one observation before the inject; the
// fault window was never observed, so the run fails with that cause.
func TestRunNeverPassesAFaultNoProbeObserved(t *testing.T) {
	w := newWorld()
	exp := experiment(t, oneFault, "")
	// Validation refuses this schedule; the engine must still not pass it.
	exp.Spec.Probes["svc"].Every = time.Hour
	// The inject is confirmed only once the fault phase's first (and, every
	// hour, only) observation was made: it cannot be inside the window.
	w.holdInject = make(chan struct{})
	opts := w.options()
	var calls atomic.Int32
	opts.NewProber = func(string, *experiments.Probe) (engine.Prober, error) {
		return engine.ProberFunc(func(ctx context.Context) experiments.Observation {
			o := w.probe(ctx)
			if calls.Add(1) == 2 { // 1 is the steady state before
				close(w.holdInject)
			}
			return o
		}), nil
	}
	rec := engine.Run(t.Context(), exp, opts)
	require.Equal(t, reports.Failed, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("fault-unobserved"), rec.Cause)
	require.Equal(t, map[string]int{"svc": 0}, rec.Faults[0].Observations, "the record shows the window saw nothing")
	requireNothingLeft(t, w)
}

// TestRunPassedCountsOnlyChecksWhileFaultsWereLive: observations before the
// inject (after: 100ms) are not checks while the faults were live.
func TestRunPassedCountsOnlyChecksWhileFaultsWereLive(t *testing.T) {
	w := newWorld()
	exp := experiment(t, "    - {plugin: fake, target: link, after: 100ms, for: 40ms}\n", "")
	rec := runOnFakeClock(t, exp, w.options(), 2*time.Millisecond)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	inWindow := rec.Faults[0].Observations["svc"]
	require.Positive(t, inWindow, "the probe observed the fault")
	require.Contains(t, rec.Reason, fmt.Sprintf("in %d checks while they were live", inWindow))
	var during int
	for _, c := range rec.SteadyState {
		if c.Phase == reports.During {
			during = c.Evaluated
		}
	}
	require.Greater(t, during, inWindow, "checks before the inject are evaluated but not counted as checks of the fault")
}

// hangingProber never answers: the probe runs out of its timeout.
func hangingProber(ctx context.Context) experiments.Observation {
	<-ctx.Done()
	return experiments.HTTPObservation{Error: ctx.Err().Error()}
}

// TestRunTimeoutTripsLatencyBudget: a timed-out observation has the latency
// it was waited for (the timeout), so a latency budget trips on it.
func TestRunTimeoutTripsLatencyBudget(t *testing.T) {
	w := newWorld()
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	budget := "  budget:\n    abortWhen:\n      - svc.latency > duration(\"15ms\")\n  safety: {maxDuration: 2h}\n"
	exp := experiment(t, faults, budget)
	exp.Spec.Probes["svc"].Timeout = 20 * time.Millisecond
	opts := w.options()
	opts.NewProber = func(string, *experiments.Probe) (engine.Prober, error) {
		return engine.ProberFunc(func(ctx context.Context) experiments.Observation {
			if w.faulted() {
				return hangingProber(ctx)
			}
			return w.probe(ctx)
		}), nil
	}
	rec := engine.Run(t.Context(), exp, opts)
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("budget"), rec.Cause)
	aborts := 0
	for _, e := range rec.Timeline {
		if e.Kind == reports.EventAbort {
			aborts++
			got, err := time.ParseDuration(e.Values["svc"].(map[string]any)["latency"].(string))
			require.NoError(t, err)
			require.GreaterOrEqual(t, got, 20*time.Millisecond, "the timeout's latency is at least the timeout")
		}
	}
	require.Equal(t, 1, aborts)
	requireNothingLeft(t, w)
}

// TestRunBlindBudgetAborts: a budget whose probe cannot observe never
// holds; after blindAfter timeouts in a row the run aborts as blind.
func TestRunBlindBudgetAborts(t *testing.T) {
	w := newWorld()
	faults := "    - {plugin: fake, target: link, after: 0s, for: 1h}\n"
	budget := "  budget:\n    abortWhen:\n      - svc.status >= 500\n  safety: {maxDuration: 2h}\n"
	exp := experiment(t, faults, budget)
	exp.Spec.Probes["svc"].Timeout = 5 * time.Millisecond
	opts := w.options()
	opts.NewProber = func(string, *experiments.Probe) (engine.Prober, error) {
		return engine.ProberFunc(func(ctx context.Context) experiments.Observation {
			if w.faulted() {
				return hangingProber(ctx)
			}
			return w.probe(ctx)
		}), nil
	}
	rec := engine.Run(t.Context(), exp, opts)
	require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("budget-blind"), rec.Cause)
	requireNothingLeft(t, w)
}

// fullLedger is a ledger on a full disk: every intent fails with ENOSPC.
type fullLedger struct{ fakeLedger }

func (l *fullLedger) Intend(safety.Entry) error {
	return fmt.Errorf("record intent: write: %w", syscall.ENOSPC)
}

func TestFullDiskRefusesTheRun(t *testing.T) {
	w := newWorld()
	opts := w.options()
	opts.Ledger = &fullLedger{fakeLedger{w: w}}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Refused, rec.Verdict, "a ledger that cannot be written refuses the run before a plugin is asked: %s", rec.Reason)
	require.Equal(t, reports.Cause("disk-full"), rec.Cause)
	require.Zero(t, w.prepared+w.injected, "nothing is asked of a plugin whose intent is not on disk")
	require.True(t, w.closed, "the plugin is closed")
}

func TestPluginRefusalRefusesTheRun(t *testing.T) {
	w := newWorld()
	opts := w.options()
	// The fake prepares through a wrapper that answers like the latency
	// plugin whose listen address is taken.
	opts.Plugins = refusingPlugins{w}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Refused, rec.Verdict, rec.Reason)
	require.Equal(t, reports.Cause("plugin-refused"), rec.Cause)
	require.Zero(t, w.injected, "nothing is injected after a refusal")
}

type refusingPlugins struct{ *world }

func (p refusingPlugins) Open(context.Context, string) (engine.FaultPlugin, error) {
	return refusingPlugin(p), nil
}

type refusingPlugin struct{ *world }

func (refusingPlugin) Prepare(context.Context, sdk.Request) (string, error) {
	return "", fmt.Errorf("prepare: %w: start proxy on 127.0.0.1:1: bind: address already in use", sdk.ErrRefused)
}
