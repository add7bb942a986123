package reports

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// A run that observes for hours records an event per observation; the
// record (and every report rendered from it) must not grow with the length
// of the run. The timeline keeps the first TimelineKeep events (how the run
// started: the steady state before, the injections) and the last
// TimelineKeep (how it ended: the abort, the reverts, the steady state
// after), and counts what is between, per kind and per source, so that the
// report's totals stay true.

// TimelineKeep is how many events the timeline keeps at each end.
const TimelineKeep = 1000

// TimelineGap is what the record says about the events it left out of the
// middle of its timeline.
type TimelineGap struct {
	// Events is how many were left out, From and To the offsets of the
	// first and the last of them.
	Events int           `json:"events"`
	From   time.Duration `json:"from"`
	To     time.Duration `json:"to"`
	// ByKind counts them per kind; Probes counts the probe observations
	// among them per probe.
	ByKind map[EventKind]int   `json:"byKind"`
	Probes map[string]GapProbe `json:"probes,omitempty"`
}

// GapProbe is what was left out of one probe's observations.
type GapProbe struct {
	Observations int `json:"observations"`
	// Failed counts the events that were not OK; FirstFailure is the offset
	// of the earliest of them.
	Failed       int            `json:"failed,omitempty"`
	FirstFailure *time.Duration `json:"firstFailure,omitempty"`
}

// AppendEvent adds e to the timeline. Once the timeline holds
// 2×TimelineKeep events, the oldest of the last TimelineKeep moves into
// TimelineOmitted for every new event, so the timeline never holds more.
func (r *Record) AppendEvent(e Event) {
	if len(r.Timeline) < 2*TimelineKeep {
		r.Timeline = append(r.Timeline, e)
		return
	}
	r.omit(r.Timeline[TimelineKeep])
	copy(r.Timeline[TimelineKeep:], r.Timeline[TimelineKeep+1:])
	r.Timeline[len(r.Timeline)-1] = e
}

// omit counts e into TimelineOmitted.
func (r *Record) omit(e Event) {
	g := r.TimelineOmitted
	if g == nil {
		g = &TimelineGap{From: e.At, To: e.At, ByKind: map[EventKind]int{}, Probes: map[string]GapProbe{}}
		r.TimelineOmitted = g
	}
	g.Events++
	g.From, g.To = min(g.From, e.At), max(g.To, e.At)
	g.ByKind[e.Kind]++
	if e.Kind != EventProbe {
		return
	}
	s := g.Probes[e.Source]
	s.Observations++
	if !e.OK {
		s.Failed++
		if s.FirstFailure == nil || e.At < *s.FirstFailure {
			at := e.At
			s.FirstFailure = &at
		}
	}
	g.Probes[e.Source] = s
}

// addOmitted adds the probe events the timeline left out to the per-probe
// totals, so that observation and failure counts stay true; latencies are
// of the kept events only, which writeTimelineGap says.
func addOmitted(r *Record, bySource map[string]*probeStats) {
	g := r.TimelineOmitted
	if g == nil || g.ByKind[EventProbe] == 0 {
		return
	}
	for source, gs := range g.Probes {
		s := bySource[source]
		if s == nil {
			s = &probeStats{source: source}
			bySource[source] = s
		}
		s.observations += gs.Observations
		if gs.Failed > 0 {
			if s.failed == 0 || *gs.FirstFailure < s.firstFailure {
				s.firstFailure = *gs.FirstFailure
			}
			s.failed += gs.Failed
		}
	}
}

// writeTimelineGap says that the timeline was bounded, and how.
func writeTimelineGap(b *strings.Builder, r *Record) {
	g := r.TimelineOmitted
	if g == nil || g.Events == 0 {
		return
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(g.ByKind)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, g.ByKind[k]))
	}
	fmt.Fprintf(b, "The timeline keeps the first and the last %d events; the %s between %s and %s (%s) are counted in the totals above but not listed, and latencies are of the listed observations only.\n\n",
		TimelineKeep, plural(g.Events, "event", "events"), formatOffset(g.From), formatOffset(g.To), strings.Join(kinds, ", "))
}

// writeResponseCaps says which probes had answers larger than their
// maxResponse: those observations failed (http, prometheus) or kept only
// the start of the output (exec, marked truncated).
func writeResponseCaps(b *strings.Builder, r *Record) {
	tooLarge, cut := map[string]int{}, map[string]int{}
	for _, e := range r.Timeline {
		if e.Kind != EventProbe {
			continue
		}
		// The engine's message for an answer over the cap; the renderer
		// only reads the record, so it recognises the words.
		if strings.Contains(e.Message, "response larger than") {
			tooLarge[e.Source]++
		}
		if t, _ := e.Values["truncated"].(bool); t {
			cut[e.Source]++
		}
	}
	var parts []string
	for _, s := range sortedKeys(tooLarge) {
		parts = append(parts, fmt.Sprintf("%s failed %s with an answer larger than its maxResponse", code(s), plural(tooLarge[s], "time", "times")))
	}
	for _, s := range sortedKeys(cut) {
		parts = append(parts, fmt.Sprintf("%s had its output cut at its maxResponse %s", code(s), plural(cut[s], "time", "times")))
	}
	if len(parts) > 0 {
		fmt.Fprintf(b, "Response caps: %s.\n\n", strings.Join(parts, "; "))
	}
}
