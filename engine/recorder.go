package engine

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/chaos-run/chaos/reports"
)

// recorder owns a run's record and its verdict. Every change to either goes
// through one of its methods, under its lock: the run's loop, the reverts
// that run concurrently, the probes counting skipped ticks and the lease
// keeper all write to it, and none of them touches the record directly.
// The verdict is decided once (the first stands, except that error
// overrides every other) and copied into the record when it is sealed.
type recorder struct {
	clock    Clock
	start    time.Time
	progress Progress

	mu  sync.Mutex
	rec *reports.Record
	// checks index: phase + expression index → rec.SteadyState index.
	checks  map[checkKey]int
	verdict reports.Verdict
	cause   reports.Cause
	reason  string
}

type checkKey struct {
	phase reports.Phase
	index int
}

func newRecorder(clock Clock, rec *reports.Record, progress Progress) *recorder {
	return &recorder{clock: clock, start: rec.StartedAt, progress: progress, rec: rec, checks: map[checkKey]int{}}
}

// runID is the record's run id; it never changes.
func (rc *recorder) runID() string { return rc.rec.RunID }

// event appends an event stamped now.
func (rc *recorder) event(kind reports.EventKind, source string, ok bool, msg string, values map[string]any) {
	rc.eventAt(rc.clock.Now(), kind, source, ok, msg, values)
}

// eventAt appends an event stamped at, and tells the progress view.
func (rc *recorder) eventAt(at time.Time, kind reports.EventKind, source string, ok bool, msg string, values map[string]any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	e := reports.Event{At: at.Sub(rc.start), Kind: kind, Source: source, OK: ok, Message: msg, Values: values}
	rc.rec.AppendEvent(e)
	if rc.progress != nil {
		rc.progress.Event(e)
	}
}

// addFault lists a planned fault.
func (rc *recorder) addFault(f reports.Fault) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.Faults = append(rc.rec.Faults, f)
}

// updateFault changes what the record says of fault i.
func (rc *recorder) updateFault(i int, update func(*reports.Fault)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	update(&rc.rec.Faults[i])
}

// addCheck counts one evaluation of steady-state expression i in phase.
func (rc *recorder) addCheck(phase reports.Phase, i int, source string, held bool, detail string) {
	now := rc.clock.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	key := checkKey{phase: phase, index: i}
	idx, ok := rc.checks[key]
	if !ok {
		idx = len(rc.rec.SteadyState)
		rc.checks[key] = idx
		rc.rec.SteadyState = append(rc.rec.SteadyState, reports.Check{Phase: phase, Expression: source})
	}
	c := &rc.rec.SteadyState[idx]
	c.Evaluated++
	if held {
		c.Held++
		return
	}
	if c.FirstBreach == nil {
		at := now.Sub(rc.start)
		c.FirstBreach, c.Detail = &at, detail
	}
}

// firstBreach describes the first expression that did not hold in phase.
func (rc *recorder) firstBreach(phase reports.Phase) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var best *reports.Check
	for i := range rc.rec.SteadyState {
		c := &rc.rec.SteadyState[i]
		if c.Phase != phase || c.FirstBreach == nil {
			continue
		}
		if best == nil || *c.FirstBreach < *best.FirstBreach {
			best = c
		}
	}
	if best == nil {
		return "no breach recorded"
	}
	return fmt.Sprintf("%s did not hold (%s)", best.Expression, best.Detail)
}

// anyBreach reports whether an expression did not hold at some check of
// phase.
func (rc *recorder) anyBreach(phase reports.Phase) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, c := range rc.rec.SteadyState {
		if c.Phase == phase && c.Held < c.Evaluated {
			return true
		}
	}
	return false
}

// skipped counts ticks a probe skipped because an observation outlasted
// its interval.
func (rc *recorder) skipped(probe string, n int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rec.SkippedTicks == nil {
		rc.rec.SkippedTicks = map[string]int{}
	}
	rc.rec.SkippedTicks[probe] += n
}

// leftover lists something that may remain after the run.
func (rc *recorder) leftover(msg string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.Leftovers = append(rc.rec.Leftovers, msg)
}

// admitted records what error budget was left when the run was admitted.
func (rc *recorder) admitted(b reports.BudgetSpend) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.ErrorBudget = &b
}

// spent records what the run spent of its error budget.
func (rc *recorder) spent(allowance, spent time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rec.ErrorBudget == nil {
		rc.rec.ErrorBudget = &reports.BudgetSpend{}
	}
	rc.rec.ErrorBudget.Allowance, rc.rec.ErrorBudget.Spent = allowance, spent
}

// timeToSafety records the time from the violating observation to every
// fault confirmed reverted, and says it in the reason.
func (rc *recorder) timeToSafety(d time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.TimeToSafety = &d
	rc.reason += fmt.Sprintf(", %s after the violating observation", d.Round(10*time.Microsecond))
}

// tripped marks the abortWhen condition whose source is expr as the one
// that stopped the run.
func (rc *recorder) tripped(expr, detail string) {
	at := rc.clock.Now().Sub(rc.start)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := range rc.rec.Budget {
		if c := &rc.rec.Budget[i]; c.Expression == expr && !c.Tripped {
			c.Tripped, c.At, c.Detail = true, &at, detail
			return
		}
	}
}

// decide sets the verdict with its typed cause. The first verdict stands,
// except that error overrides every other.
func (rc *recorder) decide(v reports.Verdict, cause reports.Cause, reason string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.verdict != "" && v != reports.Error {
		return
	}
	rc.verdict, rc.cause, rc.reason = v, cause, reason
}

// decideUnlessError sets an error verdict unless the run already has one:
// an error found first (a lost lease, a dead plugin) is the cause of what
// follows from it.
func (rc *recorder) decideUnlessError(cause reports.Cause, reason string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.verdict != reports.Error {
		rc.verdict, rc.cause, rc.reason = reports.Error, cause, reason
	}
}

// undecide forgets the verdict so far (an error that was only the
// operator's stop seen from below).
func (rc *recorder) undecide() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.verdict, rc.cause, rc.reason = "", "", ""
}

// decided is the verdict so far, "" when none.
func (rc *recorder) decided() (reports.Verdict, reports.Cause, string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.verdict, rc.cause, rc.reason
}

// seal ends the record: its end time, the verdict (error when none was
// decided, or when something may be left behind), text passed through
// redact, the timeline in time order.
func (rc *recorder) seal(redact func(string) string) *reports.Record {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.rec.EndedAt = rc.clock.Now()
	if rc.verdict == "" {
		rc.verdict, rc.cause, rc.reason = reports.Error, causeNoVerdict, "the run ended without a verdict"
	}
	if len(rc.rec.Leftovers) > 0 && rc.verdict != reports.Error {
		rc.reason += "; but some faults could not be confirmed reverted"
		rc.verdict, rc.cause = reports.Error, causeNotReverted
	}
	rc.rec.Verdict, rc.rec.Cause, rc.rec.Reason = rc.verdict, rc.cause, rc.reason
	if redact != nil {
		rc.rec.Redact(redact)
	}
	sort.SliceStable(rc.rec.Timeline, func(i, j int) bool { return rc.rec.Timeline[i].At < rc.rec.Timeline[j].At })
	return rc.rec
}
