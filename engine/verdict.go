package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// Causes of the verdicts decided here.
const (
	// causeBudget: an abortWhen condition held.
	causeBudget reports.Cause = "budget"
	// causeBudgetBlind: the probes an abortWhen condition reads could not
	// observe for budget.blindAfter observations in a row.
	causeBudgetBlind reports.Cause = "budget-blind"
	// causeSteadyStateBroke: the steady state did not hold while faults
	// were live.
	causeSteadyStateBroke reports.Cause = "steady-state-broke"
	// causeNotRecovered: the steady state did not hold after the revert.
	causeNotRecovered reports.Cause = "not-recovered"
)

// budgetTripped aborts the fault phase for a budget violation: a condition
// that held, or one that could not be evaluated for too long.
func (r *run) budgetTripped(abort context.CancelCauseFunc, v safety.Violation) {
	if errors.Is(v.Err, safety.ErrBudgetBlind) {
		abort(v.Err)
		r.event(reports.EventAbort, "budget", false, "budget could not be evaluated: "+v.Err.Error(), v.Values)
		r.setVerdictCause(reports.Aborted, causeBudgetBlind, fmt.Sprintf("the budget could not be evaluated, and flying blind is not safe: %s; every fault was reverted", v.Err))
		return
	}
	abort(fmt.Errorf("%w: %s", errBudget, v.Condition.Source))
	r.event(reports.EventAbort, "budget", false, "abortWhen held: "+v.Condition.Source, v.Values)
	r.recordTripped(v.Condition.Source, describeValues(v.Values))
	r.setVerdictCause(reports.Aborted, causeBudget, fmt.Sprintf("the budget stopped the run: %s held (%s); every fault was reverted", v.Condition.Source, describeValues(v.Values)))
}

// recordWindows puts each injected fault's observation counts per
// steady-state probe into the record.
func (r *run) recordWindows() {
	for _, f := range r.faults {
		if counts := r.windows.counts(f.index); counts != nil {
			r.updateFault(f, func(rf *reports.Fault) { rf.Observations = counts })
		}
	}
}
