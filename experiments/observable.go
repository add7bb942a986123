package experiments

import (
	"fmt"
	"time"
)

// MinObservations is how many times each steady-state probe must be able to
// observe each fault, by its schedule, for the hypothesis to be judged: one
// observation could be an accident, and none judges nothing.
const MinObservations = 3

// SteadyStateProbes are the probes the steady-state expressions read,
// directly or through history functions, sorted and unique. They are the
// probes that must observe every fault.
func (e *Experiment) SteadyStateProbes() []string {
	seen := map[string]bool{}
	for _, x := range e.Spec.SteadyState {
		if x == nil {
			continue
		}
		for _, n := range append(x.Probes(), x.HistoryProbes()...) {
			seen[n] = true
		}
	}
	return sortedKeys(seen)
}

// FaultDuration is how long fault f is live by the schedule: its `for`, or,
// without one, until the fault phase ends (the latest after + for of all
// faults), which may be no time at all.
func (s *Spec) FaultDuration(f *Fault) time.Duration {
	if f.For > 0 {
		return f.For
	}
	return max(s.FaultPhase()-f.After, 0)
}

// validateObservable refuses a schedule under which a steady-state probe
// cannot observe a fault at least MinObservations times: floor(for / every)
// observations fit in a fault's window, and fewer than three cannot support
// a verdict of passed.
func validateObservable(c checker, s *Spec) {
	if c.broken("spec.faults") || c.broken("spec.probes") || c.broken("spec.steadyState") || s.FaultPhase() == 0 {
		return
	}
	probes := c.exp.SteadyStateProbes()
	for i, f := range s.Faults {
		if f == nil || f.For < 0 || f.After < 0 {
			continue
		}
		live := s.FaultDuration(f)
		path := fmt.Sprintf("spec.faults[%d]", i)
		how := fmt.Sprintf("for: %s", f.For)
		if f.For == 0 {
			how = fmt.Sprintf("no for: live from after %s until the fault phase ends at %s (the latest after + for), %s", f.After, s.FaultPhase(), live)
		} else {
			path += ".for"
		}
		for _, name := range probes {
			p := s.Probes[name]
			if p == nil || p.Every <= 0 {
				continue
			}
			n := int64(live / p.Every)
			if n >= MinObservations {
				continue
			}
			c.at(path,
				fmt.Sprintf("probe %s can observe fault %d (%s on %s) at most %d times (floor(%s / every: %s) = %d), fewer than the %d the steady state needs to judge it",
					name, i, f.Plugin, f.Target, n, live, p.Every, n, MinObservations),
				fmt.Sprintf("%s; make probe %s's every at most %s, or the fault last at least %s", how, name, (live/MinObservations).Truncate(time.Millisecond), MinObservations*p.Every))
		}
	}
}

// validateBlindAfter checks budget.blindAfter.
func validateBlindAfter(c checker, b *Budget) {
	const p = "spec.budget.blindAfter"
	if c.exp.Has(p) && (b.BlindAfter < 1 || b.BlindAfter > MaxBlindAfter) {
		c.at(p, fmt.Sprintf("blindAfter %d must be from 1 to %d", b.BlindAfter, MaxBlindAfter), fmt.Sprintf("the default is %d observations in a row", DefaultBlindAfter))
	}
}
