// Package safety holds what stops an experiment before it does harm:
// budgets and abort conditions today; blast radius, target locks and the
// kill switch as they land. It decides; it never injects or reverts, and it
// never sleeps: the engine asks it on every new observation.
package safety

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// Budget checks a run's abortWhen conditions. It remembers, per condition,
// how many observations in a row left it blind; it is safe for concurrent
// use.
type Budget struct {
	abortWhen  []*experiments.Expression
	blindAfter int

	mu sync.Mutex
	// blind counts, per condition, the observations in a row of its probes
	// after which it could not be evaluated; seen is how many observations
	// of its probes it had counted at the last check.
	blind, seen []int
}

// NewBudget returns the budget of an experiment file.
func NewBudget(b experiments.Budget) *Budget {
	return &Budget{
		abortWhen: b.AbortWhen, blindAfter: b.EffectiveBlindAfter(),
		blind: make([]int, len(b.AbortWhen)), seen: make([]int, len(b.AbortWhen)),
	}
}

// Violation is the condition that tripped and what its probes observed.
type Violation struct {
	Condition *experiments.Expression
	// Values are the observations of the probes the condition reads.
	Values map[string]any
	// Err is nil when the condition held; ErrBudgetBlind (wrapped, saying
	// which probe could not observe and why) when it could not be evaluated
	// for blindAfter observations in a row; experiments.ErrMemoryBudget
	// (wrapped) when evaluating it went past expr's memory budget.
	Err error
}

// Check returns the first abortWhen condition that holds against the latest
// observation of each probe and the history at now. A condition that reads
// a probe with no observation yet, or a window with nothing in it, waits.
// A condition that reads a field the latest observation does not have (the
// status of a timeout, the value of an empty result: see
// experiments.FieldMissing) does not hold; when that lasts for blindAfter
// new observations of its probes in a row, or the probes it reads directly
// could not observe for as long, Check returns a Violation with Err
// ErrBudgetBlind. A timeout has the latency it was waited for, so
// `svc.latency > duration("900ms")` holds on it and needs no blindness.
func (b *Budget) Check(latest map[string]experiments.Observation, h *experiments.History, now time.Time) (Violation, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var blindV *Violation
	for i, x := range b.abortWhen {
		held, err := x.Eval(latest, h, now)
		if errors.Is(err, experiments.ErrMemoryBudget) {
			// Past expr's memory budget the condition cannot be judged now
			// or later: the caller stops the run on it (Err says why).
			return Violation{Condition: x, Err: fmt.Errorf("abortWhen %s: %w", x.Source, err)}, true
		}
		if err == nil && held {
			b.blind[i] = 0
			return Violation{Condition: x, Values: valuesFor(x, latest)}, true
		}
		why := blindness(x, latest, err)
		if !b.newTick(i, x, h) {
			continue
		}
		if why == "" {
			b.blind[i] = 0
			continue
		}
		b.blind[i]++
		if b.blind[i] >= b.blindAfter && blindV == nil {
			blindV = &Violation{Condition: x, Values: valuesFor(x, latest),
				Err: fmt.Errorf("%s could not be evaluated for %d observations in a row (%s): %w", x.Source, b.blind[i], why, ErrBudgetBlind)}
		}
	}
	if blindV != nil {
		return *blindV, true
	}
	return Violation{}, false
}

// newTick reports whether a probe condition i reads has observed since the
// last check, and remembers it. Without a history every check is one.
func (b *Budget) newTick(i int, x *experiments.Expression, h *experiments.History) bool {
	if h == nil {
		return true
	}
	seen := 0
	for _, name := range append(x.Probes(), x.HistoryProbes()...) {
		seen += h.Seen(name)
	}
	if seen == b.seen[i] {
		return false
	}
	b.seen[i] = seen
	return true
}

// blindness says why a condition that did not hold could not be evaluated:
// a probe it reads directly could not observe, or it read a field the
// latest observation does not have. It is "" when the condition was
// evaluated (or is only waiting for a first observation).
func blindness(x *experiments.Expression, latest map[string]experiments.Observation, err error) string {
	for _, name := range x.Probes() {
		if o, ok := latest[name]; ok && o != nil && !o.Succeeded() {
			return fmt.Sprintf("probe %s could not observe: %s", name, o.Failure())
		}
	}
	if ne := (*experiments.NotObservedError)(nil); errors.As(err, &ne) {
		return ne.Error()
	}
	return ""
}

// valuesFor are the latest observations of the probes x reads directly and
// through history functions: the report shows what each last observed.
func valuesFor(x *experiments.Expression, latest map[string]experiments.Observation) map[string]any {
	values := map[string]any{}
	for _, name := range append(x.Probes(), x.HistoryProbes()...) {
		if o, ok := latest[name]; ok {
			values[name] = o.Values()
		}
	}
	return values
}
