// Package safety holds what stops an experiment before it does harm:
// budgets and abort conditions today; blast radius, target locks and the
// kill switch as they land. It decides; it never injects or reverts, and it
// never sleeps: the engine asks it on every new observation.
package safety

import (
	"time"

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
// observation of each probe and the history at now. A condition that reads
// a probe with no observation yet, or a window with nothing in it, waits.
// One that reads a failed observation is evaluated on it, since a budget is
// about harm and a failing probe is harm (a condition such as
// `checkout.status != 200` must see it).
func (b *Budget) Check(latest map[string]experiments.Observation, h *experiments.History, now time.Time) (Violation, bool) {
	for _, x := range b.abortWhen {
		held, err := x.Eval(latest, h, now)
		if err != nil || !held {
			continue
		}
		// The probes it reads directly and through history functions: the
		// report shows what each last observed.
		values := map[string]any{}
		for _, name := range append(x.Probes(), x.HistoryProbes()...) {
			if o, ok := latest[name]; ok {
				values[name] = o.Values()
			}
		}
		return Violation{Condition: x, Values: values}, true
	}
	return Violation{}, false
}
