package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// Causes of runs that end because an expression could not be evaluated.
const (
	// causeEvaluationStuck: an evaluation did not finish within EvalTimeout.
	causeEvaluationStuck reports.Cause = "evaluation-stuck"
	// causeEvaluationMemory: an evaluation exceeded expr's memory budget.
	causeEvaluationMemory reports.Cause = "evaluation-memory-budget"
)

// bounded runs one evaluation off the caller's goroutine and waits for it
// at most EvalTimeout on the run's clock, or until ctx ends. An evaluation
// that does not finish in time makes the run's evaluation stuck for good
// (r.stuck): it may still be reading the observations, so nothing else is
// evaluated, and nothing ever waits for it. Only the run's own goroutine
// calls bounded; f must not write anything another goroutine reads.
func (r *run) bounded(ctx context.Context, f func()) error {
	if r.stuck != nil {
		return r.stuck
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t := r.opts.Clock.NewTimer(r.opts.EvalTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C():
		r.stuck = fmt.Errorf("%w (%s)", ErrEvaluationStuck, r.opts.EvalTimeout)
		return r.stuck
	case <-ctx.Done():
		// The run is being stopped: its abort does not wait either. The
		// evaluation is abandoned like a stuck one, since it may still run.
		r.stuck = context.Cause(ctx)
		return r.stuck
	}
}

// checkBudget checks the abortWhen conditions under the evaluation bound.
// A condition that exceeds the expression memory budget is an evaluation
// problem, returned as an error like a stuck evaluation: the budget cannot
// be judged, which is no reason to go on.
func (r *run) checkBudget(ctx context.Context) (safety.Violation, bool, error) {
	var (
		v       safety.Violation
		tripped bool
	)
	// The conditions read a copy of the latest observations: an evaluation
	// abandoned as stuck may go on reading while the run records more.
	latest, now := maps.Clone(r.latest), r.opts.Clock.Now()
	if err := r.bounded(ctx, func() { v, tripped = r.budget.Check(latest, r.history, now) }); err != nil {
		// Abandoned: v and tripped may still be written; neither is read.
		return safety.Violation{}, false, err
	}
	if tripped && errors.Is(v.Err, experiments.ErrMemoryBudget) {
		r.stuck = v.Err
		return safety.Violation{}, false, v.Err
	}
	return v, tripped, nil
}

// evaluationFailed ends the run on an expression that could not be
// evaluated: aborted, with the cause saying which way, and no more
// evaluations (the one that failed may still be running).
func (r *run) evaluationFailed(abort context.CancelCauseFunc, err error) {
	if abort != nil {
		abort(err)
	}
	cause := causeEvaluationStuck
	if errors.Is(err, experiments.ErrMemoryBudget) {
		cause = causeEvaluationMemory
	}
	msg := fmt.Sprintf("an expression could not be evaluated: %v", err)
	r.event(reports.EventAbort, "evaluation", false, msg, nil)
	r.setVerdictCause(reports.Aborted, cause, "the run was stopped because "+msg+"; every fault was reverted")
}

// evalTimeoutFor is how long a steady-state check of every probe may block
// the run: the slowest probe's timeout and an evaluation.
func (r *run) evalTimeoutFor() time.Duration {
	var longest time.Duration
	for _, p := range r.exp.Spec.Probes {
		longest = max(longest, p.Timeout)
	}
	return longest + r.opts.EvalTimeout
}
