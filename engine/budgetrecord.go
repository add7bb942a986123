package engine

import (
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// budgetConditions lists the file's abortWhen conditions for the record, so
// every report can account for each one, not only the one that tripped.
func budgetConditions(exp *experiments.Experiment) []reports.BudgetCondition {
	var out []reports.BudgetCondition
	for _, x := range exp.Spec.Budget.AbortWhen {
		if x != nil {
			out = append(out, reports.BudgetCondition{Expression: x.Source})
		}
	}
	return out
}

// recordTripped marks the condition whose source is expr as the one that
// stopped the run.
func (r *run) recordTripped(expr string, detail string) { r.tripped(expr, detail) }
