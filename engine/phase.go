package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// errBudget is the cause of an abort by a budget expression.
var errBudget = errors.New("budget violated")

// faultPhase injects the faults on their schedule while every probe runs on
// its own interval. Each new observation is checked against the steady state
// (a breach is recorded, it does not stop the run) and the budget (a breach
// aborts). Faults are reverted before faultPhase returns, on every path.
func (r *run) faultPhase(ctx context.Context) {
	phaseCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)

	obs := make(chan observation)
	var probes sync.WaitGroup
	for name, p := range r.probers {
		probes.Go(func() { r.probeLoop(phaseCtx, name, p, obs) })
	}
	// The probes are stopped after the faults are reverted, so the record
	// shows the service while the reverts happen too; they are stopped and
	// waited for on every path.
	defer func() {
		abort(nil)
		probes.Wait()
	}()
	// Time to safety: from the observation that violated the budget to
	// every fault confirmed reverted (the deferred revertAll below runs
	// before this).
	var violatedAt time.Time
	defer func() {
		if !violatedAt.IsZero() {
			r.timeToSafety(r.opts.Clock.Now().Sub(violatedAt))
		}
	}()
	defer r.revertAll(ctx)

	// In polling mode (a comparison only) the budget is looked at on a
	// ticker, as other tools do, instead of on every observation.
	var poll <-chan time.Time
	var pollTimer Timer
	if r.opts.BudgetEvery > 0 {
		pollTimer = r.opts.Clock.NewTimer(r.opts.BudgetEvery)
		defer func() { pollTimer.Stop() }()
		poll = pollTimer.C()
	}

	// A plugin that dies mid-fault is noticed at once, not at the next
	// renewal: the report must say what it left.
	died := make(chan string, len(r.plugins))
	for name, pl := range r.plugins {
		probes.Go(func() {
			select {
			case <-pl.Done():
				died <- name
			case <-phaseCtx.Done():
			}
		})
	}

	// The schedule: one step per inject and per timed revert, in order.
	plan := newSchedule(r.exp.Spec.Faults, r.exp.Spec.FaultPhase())
	phaseStart := r.opts.Clock.Now()
	spend := safety.NewSpend(r.exp.Spec.Budget.ErrorBudget, phaseStart)
	if spend != nil {
		defer func() {
			r.spent(spend.Allowance(), spend.Spent())
		}()
	}

	next := 0
	for {
		// Every turn is proof of progress for the lease keeper.
		r.beat()
		// Steps that are due now run before anything else.
		var due []step
		due, next = plan.due(next, r.opts.Clock.Now().Sub(phaseStart))
		for _, s := range due {
			if s.inject {
				if err := r.inject(phaseCtx, r.faults[s.fault]); err != nil {
					return
				}
			} else {
				r.revert(ctx, r.faults[s.fault])
			}
		}
		wait, over := plan.wait(next, r.opts.Clock.Now().Sub(phaseStart))
		if over {
			return
		}
		// Turn at least every beatEvery, so a quiet phase still beats.
		wait = min(wait, r.beatEvery())
		timer := r.opts.Clock.NewTimer(wait)
		select {
		case <-timer.C():
		case o := <-obs:
			timer.Stop()
			violated, stop := r.judge(phaseCtx, abort, o, spend, poll != nil)
			if violated && violatedAt.IsZero() {
				violatedAt = o.at
			}
			if stop {
				return
			}
		case <-poll:
			pollTimer = r.opts.Clock.NewTimer(r.opts.BudgetEvery)
			poll = pollTimer.C()
			v, tripped, err := r.checkBudget(phaseCtx)
			if err != nil && phaseCtx.Err() == nil {
				timer.Stop()
				r.evaluationFailed(abort, err)
				return
			}
			if tripped {
				timer.Stop()
				r.budgetTripped(abort, v)
				return
			}
		case name := <-died:
			timer.Stop()
			cause := fmt.Errorf("plugin %s exited mid-experiment: %w", name, sdk.ErrPluginExited)
			abort(cause)
			r.pluginExited(name, "while its faults were live", cause)
			return
		case err := <-r.leaseLost:
			timer.Stop()
			abort(err)
			r.leaseLostVerdict(err)
			return
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// judge is the evaluator's step for one observation while faults are live:
// it records the observation, checks the steady state (a breach is
// recorded, it does not stop the run), spends the error budget and checks
// the abortWhen conditions. violated says the budget was violated by this
// observation (time to safety counts from it); stop says the run must stop
// now, with its verdict set. In polling mode (a comparison only) a tripped
// condition is left for the poll to act on.
func (r *run) judge(ctx context.Context, abort context.CancelCauseFunc, o observation, spend *safety.Spend, polling bool) (violated, stop bool) {
	r.recordObservation(o)
	r.evaluateSteady(ctx, reports.During)
	if r.stuck != nil && ctx.Err() == nil {
		r.evaluationFailed(abort, r.stuck)
		return false, true
	}
	spend.Observe(o.probe, o.at, o.obs)
	r.progressBudget(spend.Spent(), spend.Allowance())
	if spend.Exhausted() {
		msg := fmt.Sprintf("the experiment spent %s of the error budget, more than its allowance of %s", spend.Spent().Round(time.Millisecond), spend.Allowance())
		abort(fmt.Errorf("%w: %s", errBudget, msg))
		r.event(reports.EventAbort, "errorBudget", false, msg, nil)
		r.setVerdictCause(reports.Aborted, causeErrorBudgetSpent, "the error budget stopped the run: "+msg+"; every fault was reverted")
		return true, true
	}
	v, tripped, err := r.checkBudget(ctx)
	if err != nil && ctx.Err() == nil {
		r.evaluationFailed(abort, err)
		return false, true
	}
	if !tripped || polling {
		return tripped, false
	}
	r.budgetTripped(abort, v)
	return true, true
}

// probeLoop observes one probe on its interval until ctx ends. A probe
// never overlaps itself: the next observation starts after the previous one
// ended, on the next tick.
func (r *run) probeLoop(ctx context.Context, name string, p Prober, out chan<- observation) {
	every := r.exp.Spec.Probes[name].Every
	for {
		start := r.opts.Clock.Now()
		o, ok := r.observe(ctx, name, p)
		if !ok {
			return
		}
		select {
		case out <- o:
		case <-ctx.Done():
			return
		}
		// The next observation starts on the next tick of this probe's
		// grid; ticks that passed while this one ran are skipped, and
		// counted, never queued.
		elapsed := r.opts.Clock.Now().Sub(start)
		if missed := int(elapsed / every); missed > 0 {
			r.skipped(name, missed)
		}
		wait := every - elapsed%every
		t := r.opts.Clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// inject starts one fault. A failure to inject is the runner's or the
// plugin's failure (verdict error), except when the run was being stopped.
func (r *run) inject(ctx context.Context, f *fault) error {
	r.log.Info("inject", "plugin", f.spec.Plugin, "target", f.spec.Target)
	h := &hold{
		id: fmt.Sprintf("%s/fault-%d", r.runID(), f.index), plugin: f.plugin, name: f.spec.Plugin,
		req: f.req, what: fmt.Sprintf("%s on %s", f.spec.Plugin, f.spec.Target),
	}
	if err := r.acquire(ctx, h); err != nil {
		if ctx.Err() != nil && !errors.Is(err, sdk.ErrPluginExited) {
			return err
		}
		r.updateFault(f, func(rf *reports.Fault) { rf.State, rf.Error = "failed", err.Error() })
		if errors.Is(err, sdk.ErrPluginExited) {
			r.pluginExited(f.spec.Plugin, "while injecting "+h.what, err)
			return err
		}
		r.event(reports.EventError, f.spec.Plugin, false, fmt.Sprintf("inject %s failed: %v", h.what, err), nil)
		r.setVerdictCause(reports.Error, causeInjectFailed, fmt.Sprintf("could not inject %s: %v", h.what, err))
		return err
	}
	f.held, f.injected = h, true
	now := r.opts.Clock.Now()
	r.windows.open(f.index, h.what, now)
	r.updateFault(f, func(rf *reports.Fault) { rf.State, rf.InjectedAt = "injected", now })
	r.event(reports.EventInject, f.spec.Plugin, true, h.what+" injected", nil)
	return nil
}

// revert ends one fault. A fault whose revert cannot be confirmed is a
// leftover, and the run's verdict becomes error.
func (r *run) revert(ctx context.Context, f *fault) {
	if !f.injected || f.reverted {
		return
	}
	// Whatever happens, do not try again: an error is recorded once.
	f.reverted = true
	r.windows.close(f.index, r.opts.Clock.Now())
	err := r.release(ctx, f.held)
	now := r.opts.Clock.Now()
	if err != nil {
		r.leftover(f.held, err)
		r.updateFault(f, func(rf *reports.Fault) { rf.State, rf.Error = "left", err.Error() })
		return
	}
	detail := r.faultDetail(ctx, f.held)
	r.updateFault(f, func(rf *reports.Fault) { rf.State, rf.RevertedAt, rf.Detail = "reverted", now, detail })
	r.event(reports.EventRevert, f.spec.Plugin, true, f.held.what+" reverted", nil)
}

// leftover records a hold that could not be confirmed released: exactly
// what it was, and what the owner should do.
func (r *run) leftover(h *hold, err error) {
	msg := fmt.Sprintf("%s (handle %s): revert failed: %v; run `chaos recover`", h.what, h.handle, err)
	switch {
	case errors.Is(err, ErrPluginNotAnswering):
		msg = fmt.Sprintf("%s (handle %s): the %s plugin stopped answering, so the revert was not asked of it; it is killed, which ends what it held in its own process, anything it changed outside may remain: run `chaos recover`", h.what, h.handle, h.name)
	case errors.Is(err, sdk.ErrPluginExited):
		msg = fmt.Sprintf("%s (handle %s): the plugin process exited before the revert; what it held in its own process ended with it, anything it changed outside may remain: run `chaos recover`", h.what, h.handle)
	}
	r.recorder.leftover(msg)
	r.event(reports.EventError, h.name, false, msg, nil)
	// An error already found (a lost lease, a dead plugin) is the cause, of
	// which this leftover is a consequence.
	r.decideUnlessError(causeNotReverted, "a fault could not be confirmed reverted: "+msg)
}

// revertAll reverts every fault still in effect, concurrently, so that the
// time to safety is the slowest revert and not the sum of them.
func (r *run) revertAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range r.faults {
		if f.injected && !f.reverted {
			wg.Go(func() { r.revert(ctx, f) })
		}
	}
	wg.Wait()
}

// cleanup reverts every fault, releases prepared targets, closes plugins
// and drops the target locks. It runs on every path.
func (r *run) cleanup(ctx context.Context) {
	r.revertAll(ctx)
	for _, key := range sortedNames(r.prepared) {
		h := r.prepared[key]
		if err := r.release(ctx, h); err != nil {
			r.leftover(h, err)
		}
	}
	for _, name := range sortedNames(r.plugins) {
		// A plugin found not answering is not asked to close: it is
		// killed (SIGTERM, SIGCONT, SIGKILL), which is what reverts what
		// it holds in its own process.
		if k, ok := r.plugins[name].(interface{ Kill() }); ok && r.silent.marked(name) {
			k.Kill()
			continue
		}
		r.plugins[name].Close()
	}
	for _, p := range r.probers {
		closeProber(p)
	}
	if r.unlock != nil {
		if err := r.unlock(); err != nil {
			r.log.Info("release target locks", "error", err)
		}
	}
}

func (r *run) recordFault(f *fault) {
	params := map[string]string{}
	for k, v := range f.spec.With {
		params[k] = fmt.Sprint(v)
	}
	r.addFault(reports.Fault{
		Index: f.index, Plugin: f.spec.Plugin, Target: f.spec.Target, Params: params,
		After: f.spec.After, For: f.spec.For, State: "planned",
	})
}

func (r *run) updateFault(f *fault, update func(*reports.Fault)) {
	r.recorder.updateFault(f.index, update)
}

// recordCheck counts one evaluation of a steady-state expression.
func (r *run) recordCheck(phase reports.Phase, i int, x *experiments.Expression, held bool, detail string) {
	r.addCheck(phase, i, x.Source, held, detail)
}

// Causes of runs that end because a plugin broke.
const (
	// causePluginExited: a plugin process died.
	causePluginExited reports.Cause = "plugin-exited"
	// causeLeaseLost: a hold's lease could not be renewed (the plugin
	// reverted it by itself, or stopped answering).
	causeLeaseLost reports.Cause = "lease-lost"
	// causeInjectFailed: a plugin could not inject a fault.
	causeInjectFailed reports.Cause = "inject-failed"
	// causeErrorBudgetSpent: the run spent more error budget than it may.
	causeErrorBudgetSpent reports.Cause = "error-budget-spent"
)

// pluginExited sets the verdict for a plugin process that died: said as
// the plugin dying, whatever call noticed it, with what that means.
func (r *run) pluginExited(name, when string, err error) {
	r.event(reports.EventError, name, false, fmt.Sprintf("the %s plugin process exited %s: %v", name, when, err), nil)
	r.setVerdictCause(reports.Error, causePluginExited, fmt.Sprintf("the %s plugin process exited %s; what it held in its own process ended with it, anything it changed outside may remain (see the leftovers)", name, when))
}

// leaseLostVerdict sets the verdict for a hold whose lease was lost. A lease
// lost because the plugin process died is reported as the plugin dying.
func (r *run) leaseLostVerdict(err error) {
	if errors.Is(err, sdk.ErrPluginExited) {
		name := "unknown"
		var ll *lostLease
		if errors.As(err, &ll) {
			name = ll.plugin
		}
		r.pluginExited(name, "while the run held faults or targets in it", err)
		return
	}
	r.event(reports.EventError, "lease", false, "a fault ended before its time: "+err.Error(), nil)
	r.setVerdictCause(reports.Error, causeLeaseLost, "a fault ended before its time because its lease could not be renewed: "+err.Error())
}
