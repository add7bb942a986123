package reports

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JUnit renders a record as JUnit XML, the format CI systems (GitHub
// Actions test reporters, GitLab's unit test reports, Jenkins) show as test
// results. One test suite is the run, with the verdict among its
// properties; each steady-state expression in each phase is a test case,
// and so is each budget condition and the error budget, so a CI page lists
// exactly which expectation broke. A failure's message says the reason in
// one line and its body the observed values, because that is where CI shows
// why.
//
// A run that ended before any check (invalid, refused, an error) has one
// test case, "run", that carries the verdict and its reason, so the CI page
// is never an empty green. The zero value is ready to use.
type JUnit struct{}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  *junitCDATA     `xml:"system-out,omitempty"`
}

type junitCDATA struct {
	Text string `xml:",cdata"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	// Body is CDATA so that its lines stay lines in the file (character
	// data would encode each line break as &#xA;).
	Body string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// Render writes the JUnit XML report of r to w. Nothing is written when the
// record cannot be encoded.
func (JUnit) Render(w io.Writer, r *Record) error {
	if r == nil {
		return ErrNilRecord
	}
	suite := junitSuiteOf(r)
	doc := junitSuites{
		Name: "chaos", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors,
		Skipped: suite.Skipped, Time: suite.Time, Suites: []junitSuite{suite},
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode junit report: %w", err)
	}
	buf.WriteString("\n")
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}

func junitSuiteOf(r *Record) junitSuite {
	name := strings.TrimSpace(oneLine(r.Experiment.Name))
	if name == "" {
		name = "unnamed experiment"
	}
	s := junitSuite{Name: name, Time: seconds(runLength(r))}
	if !r.StartedAt.IsZero() {
		s.Timestamp = r.StartedAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	s.Properties = []junitProperty{
		{Name: "verdict", Value: string(r.Verdict)},
		{Name: "exitCode", Value: strconv.Itoa(r.Verdict.ExitCode())},
	}
	if r.Cause != "" {
		s.Properties = append(s.Properties, junitProperty{Name: "cause", Value: string(r.Cause)})
	}
	s.Properties = append(s.Properties, junitProperty{Name: "reason", Value: r.Reason})
	if r.RunID != "" {
		s.Properties = append(s.Properties, junitProperty{Name: "runID", Value: r.RunID})
	}
	if r.Experiment.File != "" {
		s.Properties = append(s.Properties, junitProperty{Name: "file", Value: r.Experiment.File})
	}
	if t := r.Experiment.Owner.Team; t != "" {
		s.Properties = append(s.Properties, junitProperty{Name: "owner", Value: t})
	}
	s.SystemOut = &junitCDATA{Text: junitSystemOut(r)}

	s.Cases = append(s.Cases, junitChecks(r, name)...)
	s.Cases = append(s.Cases, junitBudget(r, name)...)
	if c, ok := junitRunCase(r, name); ok {
		s.Cases = append(s.Cases, c)
	}
	for _, c := range s.Cases {
		s.Tests++
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Error != nil:
			s.Errors++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
	return s
}

// junitChecks is a test case per steady-state expression per phase.
func junitChecks(r *Record, suite string) []junitCase {
	checks := slices.Clone(r.SteadyState)
	slices.SortStableFunc(checks, func(a, b Check) int { return phaseRank(a.Phase) - phaseRank(b.Phase) })
	var out []junitCase
	for _, c := range checks {
		tc := junitCase{
			Name:      fmt.Sprintf("steady state %s: %s", c.Phase, oneLine(c.Expression)),
			ClassName: suite + ".steadyState." + string(c.Phase),
			Time:      "0",
		}
		switch {
		case c.Evaluated == 0:
			tc.Skipped = &junitSkipped{Message: "not evaluated: the run ended before this phase checked it"}
		case c.Held < c.Evaluated:
			msg := fmt.Sprintf("held %d of %d", c.Held, c.Evaluated)
			if c.FirstBreach != nil {
				msg += "; first breach at " + formatOffset(*c.FirstBreach)
			}
			if d := oneLine(c.Detail); d != "" {
				msg += ": " + d
			}
			tc.Failure = &junitProblem{Message: msg, Type: "steady-state-breach", Body: checkBody(r, c, msg)}
		}
		out = append(out, tc)
	}
	return out
}

// checkBody is the failure's text: the message, the run's reason, and the
// values observed at the breach.
func checkBody(r *Record, c Check, msg string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nexpression: %s\nphase: %s\n", msg, c.Expression, c.Phase)
	if e, ok := breachEvent(r, c); ok {
		b.WriteString("observed:\n")
		writeValues(&b, "", e.Values)
	}
	fmt.Fprintf(&b, "verdict: %s — %s\n", r.Verdict, oneLine(r.Reason))
	return b.String()
}

// breachEvent is the deviation the check's first breach recorded: the
// first one with values, at or after the breach, that names the expression
// (the engine's message starts with it), or is at the breach exactly.
func breachEvent(r *Record, c Check) (Event, bool) {
	if c.FirstBreach == nil {
		return Event{}, false
	}
	for _, e := range r.Timeline {
		if e.Kind != EventDeviation || len(e.Values) == 0 || e.At < *c.FirstBreach {
			continue
		}
		if e.At == *c.FirstBreach || strings.HasPrefix(e.Message, c.Expression+" ") {
			return e, true
		}
	}
	return Event{}, false
}

// writeValues writes observed values one a line, a probe's fields as
// probe.field, the way expressions name them.
func writeValues(b *strings.Builder, prefix string, v map[string]any) {
	for _, k := range sortedKeys(v) {
		if m, ok := v[k].(map[string]any); ok {
			writeValues(b, prefix+k+".", m)
			continue
		}
		fmt.Fprintf(b, "  %s%s = %s\n", prefix, k, formatValue(v[k]))
	}
}

// junitBudget is a test case per abortWhen condition, one for the error
// budget, and one for an abort that no condition accounts for (maxDuration,
// a blind budget, an interrupt).
func junitBudget(r *Record, suite string) []junitCase {
	cls := suite + ".budget"
	var out []junitCase
	ran := len(r.SteadyState) > 0 || len(r.Timeline) > 0
	for _, c := range r.Budget {
		tc := junitCase{Name: "abortWhen: " + oneLine(c.Expression), ClassName: cls, Time: "0"}
		switch {
		case c.Tripped:
			msg := "held and stopped the run"
			if c.At != nil {
				msg += " at " + formatOffset(*c.At)
			}
			if d := oneLine(c.Detail); d != "" {
				msg += ": " + d
			}
			tc.Failure = &junitProblem{Message: msg, Type: "budget", Body: fmt.Sprintf("%s\nexpression: %s\nverdict: %s — %s\n", msg, c.Expression, r.Verdict, oneLine(r.Reason))}
		case !ran:
			tc.Skipped = &junitSkipped{Message: "not evaluated: the run never started"}
		}
		out = append(out, tc)
	}
	if eb := r.ErrorBudget; eb != nil {
		tc := junitCase{
			Name:      fmt.Sprintf("errorBudget: spend at most %s", formatDuration(eb.Allowance)),
			ClassName: cls, Time: "0",
		}
		if e, ok := firstAbortFrom(r, "errorBudget"); ok || eb.Spent > eb.Allowance {
			msg := fmt.Sprintf("spent %s of %s", formatDuration(eb.Spent), formatDuration(eb.Allowance))
			if ok {
				msg += "; stopped the run at " + formatOffset(e.At)
			}
			tc.Failure = &junitProblem{Message: msg, Type: "error-budget", Body: msg + "\n" + oneLine(e.Message) + "\n"}
		}
		out = append(out, tc)
	}
	// An abort that is no budget condition's: say it, or the CI page shows
	// an aborted run with every budget case green.
	if r.Verdict == Aborted && !slices.ContainsFunc(r.Budget, func(c BudgetCondition) bool { return c.Tripped }) {
		if _, ok := firstAbortFrom(r, "errorBudget"); !ok {
			msg := oneLine(r.Reason)
			if e, ok := firstOfKind(r, EventAbort); ok {
				msg = fmt.Sprintf("stopped at %s: %s", formatOffset(e.At), oneLine(e.Message))
			}
			name, typ := "guardrail", "aborted"
			if r.Cause != "" {
				name, typ = name+": "+string(r.Cause), string(r.Cause)
			}
			out = append(out, junitCase{Name: name, ClassName: cls, Time: "0",
				Failure: &junitProblem{Message: msg, Type: typ, Body: msg + "\nverdict: aborted — " + oneLine(r.Reason) + "\n"}})
		}
	}
	return out
}

func firstAbortFrom(r *Record, source string) (Event, bool) {
	for _, e := range r.Timeline {
		if e.Kind == EventAbort && e.Source == source {
			return e, true
		}
	}
	return Event{}, false
}

// junitRunCase is the test case for a verdict the other cases do not
// explain: a run that never checked anything, or one that ended in error
// (the runner or a plugin broke: a JUnit error, not a failure of the
// service), or one that failed with every check green (a fault no probe
// observed).
func junitRunCase(r *Record, suite string) (junitCase, bool) {
	tc := junitCase{Name: "run: " + string(r.Verdict), ClassName: suite + ".run", Time: seconds(runLength(r))}
	msg := oneLine(r.Reason)
	if r.Cause != "" {
		msg = fmt.Sprintf("%s (cause %s)", msg, r.Cause)
	}
	body := strings.TrimSpace(r.Reason) + "\n"
	for _, l := range r.Leftovers {
		body += "LEFT BEHIND: " + oneLine(l) + "\n"
	}
	switch r.Verdict {
	case Passed:
		return tc, false
	case Error, Invalid:
		tc.Error = &junitProblem{Message: msg, Type: string(r.Verdict), Body: body}
		return tc, true
	case Refused:
		tc.Skipped = &junitSkipped{Message: "refused: " + msg}
		return tc, true
	case Failed:
		for _, c := range r.SteadyState {
			if c.Held < c.Evaluated {
				return tc, false
			}
		}
		typ := string(r.Cause)
		if typ == "" {
			typ = string(Failed)
		}
		tc.Failure = &junitProblem{Message: msg, Type: typ, Body: body}
		return tc, true
	}
	return tc, false
}

func runLength(r *Record) time.Duration {
	if r.StartedAt.IsZero() || r.EndedAt.Before(r.StartedAt) {
		return 0
	}
	return r.EndedAt.Sub(r.StartedAt)
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// junitSystemOut is the report's first lines, for CI systems that show a
// suite's output: the verdict and what it means.
func junitSystemOut(r *Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s (exit %d)\n%s\n", oneLine(r.Experiment.Name), r.Verdict, r.Verdict.ExitCode(), r.Verdict.Meaning())
	if reason := strings.TrimSpace(r.Reason); reason != "" {
		b.WriteString("Why: " + reason + "\n")
	}
	for _, l := range r.Leftovers {
		b.WriteString("LEFT BEHIND: " + oneLine(l) + "\n")
	}
	return b.String()
}
