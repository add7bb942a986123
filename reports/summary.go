package reports

import (
	"slices"
	"sort"
	"time"
)

// Summary is what more than one report says about a record, computed once
// here so that every renderer (Markdown today; HTML, JUnit and a CD gate
// next) says the same: where the hypothesis first broke, which faults were
// live then, and each probe's statistics. Renderers format it; they do not
// recompute it.
type Summary struct {
	// FirstBreak is the earliest deviation, abort or error; nil if none.
	FirstBreak *Event
	// LiveAtFirstBreak are the faults live at FirstBreak.
	LiveAtFirstBreak []Fault
	// FirstBreach is where the hypothesis first stopped holding; nil if
	// it never did.
	FirstBreach *Breach
	// LiveAtFirstBreach are the faults live at FirstBreach.
	LiveAtFirstBreach []Fault
	// Probes are the statistics of every probe, sorted by name, counting
	// the observations the bounded timeline left out.
	Probes []ProbeSummary
}

// Breach is the first time the hypothesis stopped holding: a steady-state
// check (Expression set) when one recorded it, else a deviation event.
type Breach struct {
	At time.Duration
	// Expression and Detail come from the check.
	Expression, Detail string
	// Source and Message come from a deviation event, when no check
	// recorded the breach.
	Source, Message string
}

// ProbeSummary is what the reports say about one probe.
type ProbeSummary struct {
	Probe        string
	Observations int
	Failed       int
	// FirstFailure is the offset of the first failed observation; valid
	// when Failed > 0.
	FirstFailure time.Duration
	// Latencies are the observed latencies, sorted; empty when the probe
	// records none.
	Latencies []time.Duration
}

// Summarize computes the summary of r.
func Summarize(r *Record) Summary {
	var s Summary
	if e, ok := firstBreak(r); ok {
		s.FirstBreak = &e
		s.LiveAtFirstBreak = liveFaults(r, e.At)
	}
	if b, ok := firstBreach(r); ok {
		s.FirstBreach = &b
		s.LiveAtFirstBreach = liveFaults(r, b.At)
	}
	s.Probes = probeSummaries(r)
	return s
}

// firstBreak is the earliest event that says something went wrong: a
// deviation, an abort or an error. Ties go to the earlier entry.
func firstBreak(r *Record) (Event, bool) {
	var first Event
	found := false
	for _, e := range r.Timeline {
		switch e.Kind {
		case EventDeviation, EventAbort, EventError:
			if !found || e.At < first.At {
				first, found = e, true
			}
		}
	}
	return first, found
}

func firstOfKind(r *Record, kind EventKind) (Event, bool) {
	var first Event
	found := false
	for _, e := range r.Timeline {
		if e.Kind == kind && (!found || e.At < first.At) {
			first, found = e, true
		}
	}
	return first, found
}

// firstBreach finds where the hypothesis first stopped holding, preferring a
// steady-state check (it names the expression) over a bare deviation event.
func firstBreach(r *Record) (Breach, bool) {
	var best *Check
	for i := range r.SteadyState {
		c := &r.SteadyState[i]
		if c.FirstBreach != nil && (best == nil || *c.FirstBreach < *best.FirstBreach) {
			best = c
		}
	}
	if best != nil {
		return Breach{At: *best.FirstBreach, Expression: best.Expression, Detail: best.Detail}, true
	}
	if e, ok := firstOfKind(r, EventDeviation); ok {
		return Breach{At: e.At, Source: e.Source, Message: e.Message}, true
	}
	return Breach{}, false
}

// liveFaults are the faults that were injected and not yet reverted at the
// offset at.
func liveFaults(r *Record, at time.Duration) []Fault {
	var live []Fault
	for _, f := range r.Faults {
		if f.InjectedAt.IsZero() || f.InjectedAt.Sub(r.StartedAt) > at {
			continue
		}
		if !f.RevertedAt.IsZero() && f.RevertedAt.Sub(r.StartedAt) <= at {
			continue
		}
		live = append(live, f)
	}
	return live
}

// probeStats accumulates one probe's summary.
type probeStats struct {
	source       string
	observations int
	failed       int
	firstFailure time.Duration
	latencies    []time.Duration
}

func probeSummaries(r *Record) []ProbeSummary {
	bySource := map[string]*probeStats{}
	for _, e := range r.Timeline {
		if e.Kind != EventProbe {
			continue
		}
		s := bySource[e.Source]
		if s == nil {
			s = &probeStats{source: e.Source}
			bySource[e.Source] = s
		}
		s.observations++
		if !e.OK {
			if s.failed == 0 || e.At < s.firstFailure {
				s.firstFailure = e.At
			}
			s.failed++
		}
		if d, ok := latencyOf(e.Values["latency"]); ok {
			s.latencies = append(s.latencies, d)
		}
	}
	addOmitted(r, bySource)
	names := make([]string, 0, len(bySource))
	for n := range bySource {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]ProbeSummary, 0, len(names))
	for _, n := range names {
		s := bySource[n]
		slices.Sort(s.latencies)
		out = append(out, ProbeSummary{Probe: s.source, Observations: s.observations, Failed: s.failed, FirstFailure: s.firstFailure, Latencies: s.latencies})
	}
	return out
}
