package reports

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
)

//go:embed html.tmpl
var htmlTemplate string

// HTML renders a record as one self-contained web page for the owning team:
// the verdict and what it means for them, the hypothesis, what was done to
// which targets and when, the probe timeline as inline SVG charts (each
// probe's values over time, fault windows shaded, failures, breaches and the
// abort marked), the budget spent, the steady-state checks, what broke first
// and what to look at next.
//
// The page needs no JavaScript and fetches nothing: the style sheet and the
// charts are inline, so it can be attached to a mail, archived as a CI
// artifact or opened offline. Every text from the record goes through
// html/template, so nothing in a record (a hypothesis, a plugin's error) can
// add markup. Like the Markdown report it never prints the owner's webhook,
// and its times are offsets from the start of the run. The zero value is
// ready to use.
type HTML struct{}

// Render writes the HTML report of r to w. Nothing is written when the
// template cannot be executed.
func (HTML) Render(w io.Writer, r *Record) error {
	if r == nil {
		return ErrNilRecord
	}
	// Parsed per call, not kept in a package variable: rendering is rare and
	// the package holds no mutable state.
	t, err := template.New("report").Funcs(template.FuncMap{
		"add":      func(a, b float64) float64 { return a + b },
		"subtract": func(a, b float64) float64 { return a - b },
	}).Parse(htmlTemplate)
	if err != nil {
		return fmt.Errorf("parse html report template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, htmlViewOf(r)); err != nil {
		return fmt.Errorf("render html report: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

type htmlView struct {
	Name, VerdictWord, VerdictClass string
	To, Meaning, Reason             string
	Leftovers                       []string
	Facts                           []string
	Hypothesis                      string
	FaultsSummary                   string
	Faults                          []htmlFault
	FaultDetails                    bool // some fault has a Detail: the table gets its column
	Charts                          []chartView
	ChartNotes                      []string
	Budget                          *htmlBudget
	Checks                          []htmlCheck
	FirstBreak                      *htmlBreak
	Probes                          []htmlProbe
	Next                            [][]textPiece
}

type htmlFault struct {
	Plugin, Target, Resolved, Params, Schedule, Injected, Reverted, State, Error string
	Detail                                                                       string
	Bad                                                                          bool
}

type htmlBudget struct {
	HasSpend                  bool
	Spent, Allowance, Percent string
	BarWidth                  float64
	Over                      bool
	RemainingAtStart          string
	Conditions                []htmlCondition
	TimeToSafety              string
}

type htmlCondition struct {
	Expression, Outcome string
	Tripped             bool
}

type htmlCheck struct {
	Phase, Expression, Held, FirstBreach, Detail string
	Bad, NotEvaluated                            bool
}

type htmlBreak struct {
	At, What, Source, Message string
	Values                    [][2]string
	Live                      []string
	NoneLive                  bool
}

type htmlProbe struct {
	Probe, Colour, Observations, Failed, FirstFailure, Latency string
	Bad                                                        bool
}

// textPiece is a run of text, in a code span or not: the paragraphs of
// "what to look at next" are shared with the Markdown report.
type textPiece struct {
	Text string
	Code bool
}

func htmlViewOf(r *Record) htmlView {
	v := htmlView{
		Name:         strings.TrimSpace(oneLine(r.Experiment.Name)),
		VerdictWord:  strings.ToUpper(string(r.Verdict)),
		VerdictClass: "v-" + verdictClass(r.Verdict),
		Meaning:      r.Verdict.Meaning(),
		Reason:       strings.TrimSpace(r.Reason),
		Hypothesis:   strings.TrimSpace(r.Experiment.Hypothesis),
	}
	if v.Name == "" {
		v.Name = "unnamed experiment"
	}
	if v.VerdictWord == "" {
		v.VerdictWord = "NO VERDICT"
	}
	owner := r.Experiment.Owner
	switch {
	case owner.Team != "" && owner.Email != "":
		v.To = fmt.Sprintf("%s (%s)", oneLine(owner.Team), oneLine(owner.Email))
	case owner.Team != "":
		v.To = oneLine(owner.Team)
	case owner.Email != "":
		v.To = oneLine(owner.Email)
	default:
		v.To = "the owning team (the experiment file names no owner)"
	}
	for _, l := range r.Leftovers {
		v.Leftovers = append(v.Leftovers, oneLine(l))
	}
	v.Facts = htmlFacts(r)
	v.FaultsSummary, v.Faults = htmlFaults(r)
	v.FaultDetails = anyFaultDetail(r)
	v.Charts = charts(r)
	v.ChartNotes = chartNotes(r)
	v.Budget = htmlBudgetOf(r)
	v.Checks = htmlChecks(r)
	sum := Summarize(r)
	v.FirstBreak = htmlBreakOf(r, sum)
	v.Probes = htmlProbes(sum)
	for _, p := range nextSteps(r) {
		v.Next = append(v.Next, pieces(p))
	}
	return v
}

func verdictClass(v Verdict) string {
	switch v {
	case Passed, Failed, Aborted, Invalid, Refused:
		return string(v)
	}
	return "error"
}

func htmlFacts(r *Record) []string {
	var facts []string
	if r.RunID != "" {
		facts = append(facts, "run "+r.RunID)
	}
	if r.Experiment.File != "" {
		facts = append(facts, "file "+r.Experiment.File)
	}
	if !r.StartedAt.IsZero() {
		facts = append(facts, "started "+r.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"))
		if !r.EndedAt.IsZero() && !r.EndedAt.Before(r.StartedAt) {
			facts = append(facts, "took "+formatDuration(r.EndedAt.Sub(r.StartedAt)))
		}
	}
	if r.Cause != "" {
		facts = append(facts, "cause "+string(r.Cause))
	}
	return append(facts, fmt.Sprintf("exit code %d", r.Verdict.ExitCode()))
}

func htmlFaults(r *Record) (string, []htmlFault) {
	if len(r.Faults) == 0 {
		return "No faults were planned.", nil
	}
	injected, reverted := 0, 0
	var rows []htmlFault
	for _, f := range r.Faults {
		if !f.InjectedAt.IsZero() {
			injected++
		}
		if !f.RevertedAt.IsZero() {
			reverted++
		}
		var ps []string
		for _, k := range sortedKeys(f.Params) {
			ps = append(ps, k+"="+f.Params[k])
		}
		rows = append(rows, htmlFault{
			Plugin: f.Plugin, Target: f.Target, Resolved: strings.Join(f.Resolved, ", "),
			Params: strings.Join(ps, ", "), Schedule: schedule(f),
			Injected: offsetOf(r, f.InjectedAt), Reverted: offsetOf(r, f.RevertedAt),
			State: f.State, Error: oneLine(f.Error), Detail: f.Detail, Bad: f.State == "failed" || f.State == "left",
		})
	}
	return fmt.Sprintf("%s planned, %d injected, %d reverted.",
		capitalize(plural(len(r.Faults), "fault", "faults")), injected, reverted), rows
}

func chartNotes(r *Record) []string {
	var notes []string
	var skipped []string
	for _, name := range sortedKeys(r.SkippedTicks) {
		if n := r.SkippedTicks[name]; n > 0 {
			skipped = append(skipped, fmt.Sprintf("%s %d", name, n))
		}
	}
	if len(skipped) > 0 {
		notes = append(notes, "Skipped ticks (an observation outlasted its interval; probes never overlap themselves): "+strings.Join(skipped, ", ")+".")
	}
	if g := r.TimelineOmitted; g != nil && g.Events > 0 {
		notes = append(notes, fmt.Sprintf("The record keeps the first and the last %d events; %s between %s and %s are counted in the totals but not drawn (the hatched band).",
			TimelineKeep, plural(g.Events, "event", "events"), formatOffset(g.From), formatOffset(g.To)))
	}
	return notes
}

func htmlBudgetOf(r *Record) *htmlBudget {
	b := &htmlBudget{}
	if eb := r.ErrorBudget; eb != nil {
		b.HasSpend = true
		b.Spent, b.Allowance = formatDuration(eb.Spent), formatDuration(eb.Allowance)
		frac := 0.0
		if eb.Allowance > 0 {
			frac = float64(eb.Spent) / float64(eb.Allowance)
		}
		b.Percent = strconv.FormatFloat(100*frac, 'f', 1, 64) + "%"
		b.BarWidth = round1(min(frac, 1) * 100)
		b.Over = frac >= 1
		if eb.RemainingAtStart != nil {
			b.RemainingAtStart = strconv.FormatFloat(*eb.RemainingAtStart, 'f', -1, 64) + "%"
		}
	}
	for _, c := range r.Budget {
		hc := htmlCondition{Expression: c.Expression, Tripped: c.Tripped, Outcome: "never held: the run went on"}
		if c.Tripped {
			hc.Outcome = "held and stopped the run"
			if c.At != nil {
				hc.Outcome += " at " + formatOffset(*c.At)
			}
			if d := oneLine(c.Detail); d != "" {
				hc.Outcome += " (" + d + ")"
			}
		}
		b.Conditions = append(b.Conditions, hc)
	}
	if r.TimeToSafety != nil {
		b.TimeToSafety = formatDuration(*r.TimeToSafety)
	}
	if !b.HasSpend && len(b.Conditions) == 0 && b.TimeToSafety == "" {
		return nil
	}
	return b
}

func htmlChecks(r *Record) []htmlCheck {
	checks := slices.Clone(r.SteadyState)
	slices.SortStableFunc(checks, func(a, b Check) int { return phaseRank(a.Phase) - phaseRank(b.Phase) })
	var out []htmlCheck
	for _, c := range checks {
		hc := htmlCheck{Phase: string(c.Phase), Expression: c.Expression, Held: fmt.Sprintf("%d of %d", c.Held, c.Evaluated), FirstBreach: "—", Detail: oneLine(c.Detail)}
		switch {
		case c.Evaluated == 0:
			hc.Held, hc.NotEvaluated = "not evaluated", true
		case c.Held < c.Evaluated:
			hc.Bad = true
		}
		if c.FirstBreach != nil {
			hc.FirstBreach = formatOffset(*c.FirstBreach)
		}
		out = append(out, hc)
	}
	return out
}

func htmlBreakOf(r *Record, sum Summary) *htmlBreak {
	if sum.FirstBreak == nil {
		return nil
	}
	e := *sum.FirstBreak
	b := &htmlBreak{
		At: formatOffset(e.At),
		What: map[EventKind]string{
			EventDeviation: "the steady state deviated",
			EventAbort:     "the run was aborted",
			EventError:     "the run hit an error",
		}[e.Kind],
		Source: e.Source, Message: oneLine(e.Message),
	}
	for _, k := range sortedKeys(e.Values) {
		b.Values = append(b.Values, [2]string{k, formatValue(e.Values[k])})
	}
	for _, f := range sum.LiveAtFirstBreak {
		d := f.Plugin + " on " + f.Target
		if len(f.Params) > 0 {
			var ps []string
			for _, k := range sortedKeys(f.Params) {
				ps = append(ps, k+"="+f.Params[k])
			}
			d += " (" + strings.Join(ps, ", ") + ")"
		}
		b.Live = append(b.Live, d+", injected at "+offsetOf(r, f.InjectedAt))
	}
	b.NoneLive = len(b.Live) == 0
	return b
}

func htmlProbes(sum Summary) []htmlProbe {
	var out []htmlProbe
	for i, s := range sum.Probes {
		p := htmlProbe{Probe: s.Probe, Colour: SeriesColour(i), Observations: strconv.Itoa(s.Observations), Failed: "0", FirstFailure: "—", Latency: "—"}
		if p.Probe == "" {
			p.Probe = "(unnamed)"
		}
		if s.Failed > 0 && s.Observations > 0 {
			p.Failed = fmt.Sprintf("%d (%.1f%%)", s.Failed, 100*float64(s.Failed)/float64(s.Observations))
			p.FirstFailure = formatOffset(s.FirstFailure)
			p.Bad = true
		}
		if n := len(s.Latencies); n > 0 {
			p.Latency = formatDuration(s.Latencies[0]) + " / " + formatDuration(median(s.Latencies)) + " / " + formatDuration(s.Latencies[n-1])
		}
		out = append(out, p)
	}
	return out
}

// pieces splits a Markdown paragraph into plain text and code spans, and
// drops the ** of bold: the HTML report shows the same words as the
// Markdown one without Markdown's marks.
func pieces(md string) []textPiece {
	var out []textPiece
	add := func(s string, code bool) {
		if !code {
			s = strings.ReplaceAll(s, "**", "")
		}
		if s != "" {
			out = append(out, textPiece{Text: s, Code: code})
		}
	}
	for md != "" {
		i := strings.IndexByte(md, '`')
		if i < 0 {
			add(md, false)
			break
		}
		add(md[:i], false)
		n := 0
		for i+n < len(md) && md[i+n] == '`' {
			n++
		}
		fence := md[i : i+n]
		rest := md[i+n:]
		j := strings.Index(rest, fence)
		if j < 0 {
			add(md[i:], false)
			break
		}
		c := rest[:j]
		if len(c) > 1 && strings.HasPrefix(c, " ") && strings.HasSuffix(c, " ") {
			c = c[1 : len(c)-1]
		}
		add(c, true)
		md = rest[j+n:]
	}
	return out
}
