package safety

import (
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// Spend tracks how much of its SLO error budget an experiment has spent,
// from its own probes' outcomes while faults are live. Each observation
// stands for the time since the probe's previous one; a failed observation
// (experiments.Failed: could not observe, a 5xx, a non-zero exit) spends
// that time. With several probes, the spend is the largest of theirs: the
// budget is the service's, and the probes are views of the same failures.
type Spend struct {
	allowance time.Duration
	counts    map[string]bool // nil: every probe counts
	since     time.Time
	last      map[string]time.Time
	spent     map[string]time.Duration
}

// NewSpend starts counting at start. It returns nil when the file sets no
// error budget.
func NewSpend(eb *experiments.ErrorBudget, start time.Time) *Spend {
	if eb == nil {
		return nil
	}
	s := &Spend{allowance: eb.Allowance(), since: start, last: map[string]time.Time{}, spent: map[string]time.Duration{}}
	if len(eb.Probes) > 0 {
		s.counts = map[string]bool{}
		for _, p := range eb.Probes {
			s.counts[p] = true
		}
	}
	return s
}

// Observe accounts for one observation.
func (s *Spend) Observe(probe string, at time.Time, o experiments.Observation) {
	if s == nil || (s.counts != nil && !s.counts[probe]) {
		return
	}
	prev, ok := s.last[probe]
	if !ok {
		prev = s.since
	}
	s.last[probe] = at
	if experiments.Failed(o) && at.After(prev) {
		s.spent[probe] += at.Sub(prev)
	}
}

// Spent is the error budget spent so far.
func (s *Spend) Spent() time.Duration {
	if s == nil {
		return 0
	}
	var most time.Duration
	for _, d := range s.spent {
		most = max(most, d)
	}
	return most
}

// Allowance is what the experiment may spend.
func (s *Spend) Allowance() time.Duration {
	if s == nil {
		return 0
	}
	return s.allowance
}

// Exhausted reports whether the experiment has spent more than its share.
func (s *Spend) Exhausted() bool { return s != nil && s.Spent() > s.allowance }
