package engine

import (
	"context"
	"slices"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// Deliverer sends a record's report to its owners (a webhook, e-mail) once
// the report files are written. *deliver.Deliverer is the one the CLI
// uses; the engine knows only this, so it never speaks HTTP or SMTP itself.
//
// Deliver returns one entry per channel the file names; the Runner records
// them and never lets them change the verdict. It must return by the time
// ctx is done.
type Deliverer interface {
	Deliver(ctx context.Context, exp *experiments.Experiment, rec *reports.Record, files []string) []reports.Delivery
}

// Progress is told how a run goes while it goes: `chaos run`'s live view
// and its log lines read it. Its methods are called on the run's
// goroutines, in the order of the events, and must return at once without
// calling back into the run. What it is given is its own (copies) and holds
// no secret: the Runner redacts it first.
type Progress interface {
	// Started is called once, when the file is loaded and admitted.
	Started(s Start)
	// Event is called for every event as it is added to the record.
	Event(e reports.Event)
	// Budget is called whenever the error budget's spend is measured.
	Budget(spent, allowance time.Duration)
}

// Start is what a run is about to do, for Progress.
type Start struct {
	Name string
	// MaxDuration caps the whole run.
	MaxDuration time.Duration
	// Faults are the planned faults (plugin, target, after, for).
	Faults []reports.Fault
	// FaultPhase is how long the fault phase lasts.
	FaultPhase time.Duration
	// Probes are the probes' names, sorted.
	Probes []string
	// AbortWhen is how many abort conditions the budget has.
	AbortWhen int
}

// startOf is the Start of exp.
func startOf(exp *experiments.Experiment) Start {
	s := Start{
		Name:        exp.Metadata.Name,
		MaxDuration: exp.Spec.Safety.EffectiveMaxDuration(),
		FaultPhase:  exp.Spec.FaultPhase(),
		AbortWhen:   len(exp.Spec.Budget.AbortWhen),
	}
	for i, f := range exp.Spec.Faults {
		if f != nil {
			s.Faults = append(s.Faults, reports.Fault{Index: i, Plugin: f.Plugin, Target: f.Target, After: f.After, For: f.For, State: "planned"})
		}
	}
	for name := range exp.Spec.Probes {
		s.Probes = append(s.Probes, name)
	}
	slices.Sort(s.Probes)
	return s
}

// redactingProgress hands p copies of what it is told, with the
// experiment's secrets replaced.
type redactingProgress struct {
	p      Progress
	redact func(string) string
}

func (r redactingProgress) Started(s Start) {
	s.Name = r.redact(s.Name)
	r.p.Started(s)
}

func (r redactingProgress) Event(e reports.Event) {
	e.Source, e.Message = r.redact(e.Source), r.redact(e.Message)
	e.Values = copyValues(e.Values, r.redact)
	r.p.Event(e)
}

func (r redactingProgress) Budget(spent, allowance time.Duration) { r.p.Budget(spent, allowance) }

// copyValues deep-copies an event's values, redacting each text: the
// record's own maps are redacted in place when the run ends, while a
// progress reader may still hold what it was given.
func copyValues(v map[string]any, redact func(string) string) map[string]any {
	if v == nil {
		return nil
	}
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x, redact)
	}
	return out
}

func copyValue(x any, redact func(string) string) any {
	switch t := x.(type) {
	case string:
		return redact(t)
	case map[string]any:
		return copyValues(t, redact)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = copyValue(t[i], redact)
		}
		return out
	case []string:
		out := make([]string, len(t))
		for i := range t {
			out[i] = redact(t[i])
		}
		return out
	}
	return x
}

// progressBudget tells the progress reader the error budget's spend.
func (r *run) progressBudget(spent, allowance time.Duration) {
	if r.opts.Progress != nil {
		r.opts.Progress.Budget(spent, allowance)
	}
}

// withProgress wraps p so that it sees no secret of exp; nil stays nil.
func withProgress(p Progress, exp *experiments.Experiment) Progress {
	if p == nil {
		return nil
	}
	return redactingProgress{p: p, redact: experiments.NewRedactor(exp.Secrets()).Redact}
}
