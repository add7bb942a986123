package engine

import (
	"sort"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// step is one thing the schedule does: inject a fault, or revert it at the
// end of its `for`. at is the offset from the start of the fault phase.
type step struct {
	at     time.Duration
	fault  int // index into the run's faults
	inject bool
}

// schedule is the fault phase's plan, from the file alone: every inject at
// its `after`, every timed revert at `after+for`, in order (a revert and an
// inject due at once keep the file's order, revert of an earlier fault
// first only if it comes first in the file), and the phase's end. It is
// pure: no clock, no plugin.
type schedule struct {
	steps []step
	end   time.Duration
}

func newSchedule(faults []*experiments.Fault, end time.Duration) schedule {
	var steps []step
	for i, f := range faults {
		steps = append(steps, step{at: f.After, fault: i, inject: true})
		if f.For > 0 {
			steps = append(steps, step{at: f.After + f.For, fault: i})
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at < steps[j].at })
	return schedule{steps: steps, end: end}
}

// due returns the steps from next on that are due at elapsed, and the index
// of the first step not yet due.
func (s schedule) due(next int, elapsed time.Duration) ([]step, int) {
	from := next
	for next < len(s.steps) && elapsed >= s.steps[next].at {
		next++
	}
	return s.steps[from:next], next
}

// wait is how long from elapsed until the next step (or the end of the
// phase when every step is done), and whether the phase is over.
func (s schedule) wait(next int, elapsed time.Duration) (time.Duration, bool) {
	if next == len(s.steps) {
		if elapsed >= s.end {
			return 0, true
		}
		return s.end - elapsed, false
	}
	return s.steps[next].at - elapsed, false
}
