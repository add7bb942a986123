// Package safety holds what stops an experiment before it does harm:
// budgets and abort conditions today; blast radius, target locks and the
// kill switch as they land. It decides; it never injects or reverts, and it
// never sleeps: the engine asks it on every new observation.
package safety

import (
	"github.com/expr-lang/expr"

	"github.com/chaos-run/chaos/experiments"
)

// Budget checks a run's abortWhen conditions.
type Budget struct {
	abortWhen []*experiments.Expression
}

// NewBudget returns the budget of an experiment file.
func NewBudget(b experiments.Budget) *Budget {
	return &Budget{abortWhen: b.AbortWhen}
}

// Violation is the condition that tripped and what its probes observed.
type Violation struct {
	Condition *experiments.Expression
	// Values are the observations of the probes the condition reads.
	Values map[string]any
}

// Check returns the first abortWhen condition that holds against the latest
// observation of each probe. A condition that reads a probe with no
// observation yet waits for one; one that reads a failed observation is
// evaluated on it, since a budget is about harm and a failing probe is harm
// (a condition such as `checkout.status != 200` must see it).
func (b *Budget) Check(latest map[string]experiments.Observation) (Violation, bool) {
	for _, x := range b.abortWhen {
		env := make(map[string]any, len(x.Probes()))
		values := make(map[string]any, len(x.Probes()))
		ready := true
		for _, name := range x.Probes() {
			o, ok := latest[name]
			if !ok {
				ready = false
				break
			}
			env[name] = o
			values[name] = o.Values()
		}
		if !ready {
			continue
		}
		out, err := expr.Run(x.Program(), env)
		if held, _ := out.(bool); err == nil && held {
			return Violation{Condition: x, Values: values}, true
		}
	}
	return Violation{}, false
}
