// Package reports holds the record of one experiment run and the renderers
// that turn it into something the owning team reads: JSON (the full record),
// Markdown (fits a pull request or a ticket).
//
// The record is plain data. Nothing here runs probes, talks to plugins or
// decides a verdict; the engine fills a Record and the renderers only read it.
// A renderer must never print a secret: the engine redacts before it records.
package reports

import (
	"time"
)

// Verdict is the outcome of a run. The exit code of `chaos run` follows it.
type Verdict string

// The verdicts of DESIGN.md, in the order of their exit codes.
const (
	Passed  Verdict = "passed"  // steady state held before, during and after
	Failed  Verdict = "failed"  // the hypothesis did not hold
	Aborted Verdict = "aborted" // a budget or guardrail stopped the run; faults were reverted
	Invalid Verdict = "invalid" // the file, a flag or a fault's parameters are wrong; nothing was injected
	Error   Verdict = "error"   // the runner or a plugin broke
	Refused Verdict = "refused" // the environment said no before anything was touched
)

// Cause says, as a stable word a pipeline or a test can match, why a run
// ended as it did: "budget", "max-duration", "interrupted", "plugin-exited",
// "lease-lost", ... The packages that decide a verdict declare the causes
// they use next to where they use them; the reason beside it is for people.
type Cause string

// ExitCode is the process exit code that goes with the verdict.
func (v Verdict) ExitCode() int {
	switch v {
	case Passed:
		return 0
	case Failed:
		return 1
	case Aborted:
		return 2
	case Invalid:
		return 3
	case Refused:
		return 5
	default:
		return 4
	}
}

// Meaning says in one sentence what the verdict means for the owning team.
func (v Verdict) Meaning() string {
	switch v {
	case Passed:
		return "The hypothesis held: the service stayed healthy before, during and after the faults."
	case Failed:
		return "The hypothesis did not hold: the service is weaker than its owners expected."
	case Aborted:
		return "A budget or guardrail stopped the experiment early; every fault was reverted."
	case Invalid:
		return "The experiment file, a flag or a fault's parameters are wrong; nothing was injected."
	case Refused:
		return "The environment said no before anything was touched (kill switch, a held lock, open ledger entries, error budget, an address in use, a full disk); nothing was injected. Nothing is wrong with the file: try again once the cause is gone."
	default:
		return "The runner or a plugin broke; see below for exactly what was left behind, if anything."
	}
}

// Record is everything known about one run. It is the JSON report as is.
type Record struct {
	RunID      string     `json:"runID"`
	Experiment Experiment `json:"experiment"`
	StartedAt  time.Time  `json:"startedAt"`
	EndedAt    time.Time  `json:"endedAt"`
	Verdict    Verdict    `json:"verdict"`
	// Reason is the one sentence of why the verdict is what it is.
	Reason string `json:"reason"`
	// Cause is why the run ended, as a stable word (see Cause); empty for
	// runs whose verdict needs no more than itself (passed).
	Cause Cause `json:"cause,omitempty"`
	// Faults lists every fault the run planned, with what happened to it.
	Faults []Fault `json:"faults"`
	// SteadyState lists the checks of the steady state, one per phase and
	// expression, with how often each held.
	SteadyState []Check `json:"steadyState"`
	// Timeline is every event in time order: probe observations, fault
	// injections and reverts, deviations, aborts.
	Timeline []Event `json:"timeline"`
	// TimelineOmitted summarises the events left out of Timeline, which
	// keeps the first and the last TimelineKeep (see AppendEvent); nil
	// when nothing was left out.
	TimelineOmitted *TimelineGap `json:"timelineOmitted,omitempty"`
	// Budget lists the file's budget.abortWhen conditions, each with
	// whether it stopped the run, so a report can account for every one
	// (JUnit: a test case each).
	Budget []BudgetCondition `json:"budget,omitempty"`
	// ErrorBudget is what the run spent of its SLO error budget, when the
	// file sets one.
	ErrorBudget *BudgetSpend `json:"errorBudget,omitempty"`
	// SkippedTicks counts, per probe, the intervals that passed while an
	// observation was still running: the probe skipped them rather than
	// pile up.
	SkippedTicks map[string]int `json:"skippedTicks,omitempty"`
	// TimeToSafety is, for a run the budget aborted, the time from the
	// observation that violated the budget to every fault confirmed
	// reverted.
	TimeToSafety *time.Duration `json:"timeToSafety,omitempty"`
	// Leftovers names anything the run could not confirm as reverted. It is
	// empty unless the verdict is error.
	Leftovers []string `json:"leftovers,omitempty"`
	// Deliveries says how the report reached its owners beyond the files:
	// each webhook and e-mail, whether it got there, in how many attempts.
	// A failed delivery never changes the verdict.
	Deliveries []Delivery `json:"deliveries,omitempty"`
}

// Experiment is the part of the experiment file a reader needs to make sense
// of the report.
type Experiment struct {
	Name       string `json:"name"`
	File       string `json:"file,omitempty"`
	Hypothesis string `json:"hypothesis"`
	Owner      Owner  `json:"owner"`
}

// Owner is the team the report is addressed to.
type Owner struct {
	Team    string `json:"team"`
	Email   string `json:"email,omitempty"`
	Webhook string `json:"webhook,omitempty"`
}

// Fault is one planned fault and its fate.
type Fault struct {
	Index  int    `json:"index"`
	Plugin string `json:"plugin"`
	Target string `json:"target"`
	// Resolved names the concrete things the target meant when the run
	// started, as its plugin resolved them (127.0.0.1:18082).
	Resolved []string          `json:"resolved,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	// After and For are the schedule from the file; For is zero for a fault
	// that lasts until the end of the fault phase.
	After time.Duration `json:"after"`
	For   time.Duration `json:"for"`
	// InjectedAt and RevertedAt are zero when that step did not happen.
	InjectedAt time.Time `json:"injectedAt,omitzero"`
	RevertedAt time.Time `json:"revertedAt,omitzero"`
	// State is planned, injected, reverted, failed or left.
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Observations counts, per steady-state probe, the observations made
	// while the fault was certainly live: started after its inject was
	// confirmed and ended before its revert began.
	Observations map[string]int `json:"observations,omitempty"`
	// Detail is what the plugin said of the fault after its revert (its
	// Status detail), e.g. podkill's pods killed and when their
	// replacements were Ready; empty when the plugin says nothing.
	Detail string `json:"detail,omitempty"`
}

// Phase names the part of the run a steady-state check belongs to.
type Phase string

// The phases in which the steady state is checked.
const (
	Before Phase = "before"
	During Phase = "during"
	After  Phase = "after"
)

// Check is one steady-state expression in one phase.
type Check struct {
	Phase      Phase  `json:"phase"`
	Expression string `json:"expression"`
	Evaluated  int    `json:"evaluated"`
	Held       int    `json:"held"`
	// FirstBreach is the offset from the start of the run at which the
	// expression first did not hold in this phase, and Detail says why.
	FirstBreach *time.Duration `json:"firstBreach,omitempty"`
	Detail      string         `json:"detail,omitempty"`
}

// EventKind says what an event records.
type EventKind string

// The kinds of timeline events.
const (
	EventProbe     EventKind = "probe"
	EventInject    EventKind = "inject"
	EventRevert    EventKind = "revert"
	EventDeviation EventKind = "deviation"
	EventAbort     EventKind = "abort"
	EventPhase     EventKind = "phase"
	EventError     EventKind = "error"
)

// Event is one entry of the timeline. At is the offset from StartedAt, so a
// timeline reads the same whatever the clock said.
type Event struct {
	At     time.Duration `json:"at"`
	Kind   EventKind     `json:"kind"`
	Source string        `json:"source,omitempty"`
	// OK is false for a failed probe, a breached expression or a step that
	// went wrong.
	OK      bool           `json:"ok"`
	Message string         `json:"message,omitempty"`
	Values  map[string]any `json:"values,omitempty"`
}

// BudgetCondition is one budget.abortWhen expression and its fate.
type BudgetCondition struct {
	Expression string `json:"expression"`
	// Tripped says the condition held and stopped the run; At is the
	// offset from the start of the run, and Detail the values it held on.
	Tripped bool           `json:"tripped,omitempty"`
	At      *time.Duration `json:"at,omitempty"`
	Detail  string         `json:"detail,omitempty"`
}

// BudgetSpend is the error budget an experiment was allowed and spent.
type BudgetSpend struct {
	Allowance time.Duration `json:"allowance"`
	Spent     time.Duration `json:"spent"`
	// RemainingAtStart is the percentage of the window's error budget the
	// SLI source said was left when the run was admitted.
	RemainingAtStart *float64 `json:"remainingAtStart,omitempty"`
}
