package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Markdown renders a record as a report for the team that owns the service,
// sized to paste into a pull request or a ticket. It reads top to bottom the
// way the team asks its questions: what happened and what it means for us,
// what was done to which targets, whether the steady state held, what broke
// first, how the probes saw it, whether anything is still broken, and what to
// do now.
//
// Times are offsets from the start of the run ("+2.5s"), so two runs read
// alike whatever the clock said. The owner's webhook is never printed: a
// webhook URL usually carries its own credential. The zero value is ready to
// use.
type Markdown struct{}

// Render writes the Markdown report of r to w.
func (Markdown) Render(w io.Writer, r *Record) error {
	if r == nil {
		return ErrNilRecord
	}
	var b strings.Builder
	writeHeader(&b, r)
	writeHypothesis(&b, r)
	writeFaults(&b, r)
	writeSteadyState(&b, r)
	writeFirstBreak(&b, r)
	writeProbes(&b, r)
	writeLeftovers(&b, r)
	writeNext(&b, r)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write markdown report: %w", err)
	}
	return nil
}

func writeHeader(b *strings.Builder, r *Record) {
	name := oneLine(r.Experiment.Name)
	if name == "" {
		name = "unnamed experiment"
	}
	fmt.Fprintf(b, "## %s — %s\n\n", verdictTitle(r.Verdict), name)

	owner := r.Experiment.Owner
	switch {
	case owner.Team != "" && owner.Email != "":
		fmt.Fprintf(b, "To: %s (%s)\n\n", oneLine(owner.Team), oneLine(owner.Email))
	case owner.Team != "":
		fmt.Fprintf(b, "To: %s\n\n", oneLine(owner.Team))
	case owner.Email != "":
		fmt.Fprintf(b, "To: %s\n\n", oneLine(owner.Email))
	default:
		b.WriteString("To: the owning team (the experiment file names no owner)\n\n")
	}

	fmt.Fprintf(b, "**%s**\n\n", r.Verdict.Meaning())
	if reason := oneLine(r.Reason); reason != "" {
		fmt.Fprintf(b, "Why: %s\n\n", capitalize(reason))
	}
	if n := len(r.Leftovers); n > 0 {
		// The leftovers section is near the end, where it belongs in the
		// story; this line makes sure nobody stops reading before it.
		fmt.Fprintf(b, "> ⚠️ **Something may still be broken:** %s could not be confirmed as reverted. See Leftovers below.\n\n",
			plural(n, "thing", "things"))
	}

	var facts []string
	if r.RunID != "" {
		facts = append(facts, "Run "+code(r.RunID))
	}
	if r.Experiment.File != "" {
		facts = append(facts, "file "+code(r.Experiment.File))
	}
	if !r.StartedAt.IsZero() {
		facts = append(facts, "started "+r.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"))
		if !r.EndedAt.IsZero() && !r.EndedAt.Before(r.StartedAt) {
			facts = append(facts, "took "+formatDuration(r.EndedAt.Sub(r.StartedAt)))
		}
	}
	if eb := r.ErrorBudget; eb != nil {
		facts = append(facts, fmt.Sprintf("error budget spent %s of %s", formatDuration(eb.Spent), formatDuration(eb.Allowance)))
	}
	if r.TimeToSafety != nil {
		facts = append(facts, "time to safety "+formatDuration(*r.TimeToSafety))
	}
	if r.Cause != "" {
		facts = append(facts, "cause "+code(string(r.Cause)))
	}
	facts = append(facts, fmt.Sprintf("exit code %d", r.Verdict.ExitCode()))
	b.WriteString(strings.Join(facts, " · ") + "\n\n")
}

func writeHypothesis(b *strings.Builder, r *Record) {
	b.WriteString("### Hypothesis\n\n")
	h := strings.TrimSpace(r.Experiment.Hypothesis)
	if h == "" {
		b.WriteString("_The experiment file states no hypothesis._\n\n")
		return
	}
	for line := range strings.Lines(h) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			b.WriteString(">\n")
			continue
		}
		b.WriteString("> " + line + "\n")
	}
	b.WriteString("\n")
}

func writeFaults(b *strings.Builder, r *Record) {
	b.WriteString("### What was done\n\n")
	if len(r.Faults) == 0 {
		b.WriteString("_No faults were planned._\n\n")
		return
	}
	injected, reverted := 0, 0
	for _, f := range r.Faults {
		if !f.InjectedAt.IsZero() {
			injected++
		}
		if !f.RevertedAt.IsZero() {
			reverted++
		}
	}
	fmt.Fprintf(b, "%s planned, %d injected, %d reverted.\n\n",
		capitalize(plural(len(r.Faults), "fault", "faults")), injected, reverted)

	t := table{header: []string{"Plugin", "Target", "Parameters", "Schedule", "Injected", "Reverted", "State", "Error"}}
	withDetail := anyFaultDetail(r)
	if withDetail {
		t.header = append(t.header, "Detail")
	}
	for _, f := range r.Faults {
		state := f.State
		if state == "failed" || state == "left" {
			state = "**" + state + "**"
		}
		cells := []string{code(f.Plugin), code(f.Target), params(f.Params, "—"), schedule(f),
			offsetOf(r, f.InjectedAt), offsetOf(r, f.RevertedAt), state, f.Error}
		if withDetail {
			cells = append(cells, f.Detail)
		}
		t.add(cells...)
	}
	t.write(b)
}

// anyFaultDetail says whether a plugin said something of a fault after its
// revert (podkill: the pods killed and when their replacements were Ready);
// the fault tables have a Detail column only then.
func anyFaultDetail(r *Record) bool {
	return slices.ContainsFunc(r.Faults, func(f Fault) bool { return f.Detail != "" })
}

func writeSteadyState(b *strings.Builder, r *Record) {
	b.WriteString("### Steady state\n\n")
	if len(r.SteadyState) == 0 {
		b.WriteString("_No steady-state checks were recorded._\n\n")
		return
	}
	checks := slices.Clone(r.SteadyState)
	slices.SortStableFunc(checks, func(a, b Check) int {
		return phaseRank(a.Phase) - phaseRank(b.Phase)
	})

	t := table{header: []string{"Phase", "Expression", "Held", "First breach", "Detail"}}
	for _, c := range checks {
		held := fmt.Sprintf("%d of %d", c.Held, c.Evaluated)
		switch {
		case c.Evaluated == 0:
			held = "not evaluated"
		case c.Held < c.Evaluated:
			held = "**" + held + "**"
		}
		breach := "—"
		if c.FirstBreach != nil {
			breach = formatOffset(*c.FirstBreach)
		}
		t.add(string(c.Phase), code(c.Expression), held, breach, c.Detail)
	}
	t.write(b)
}

func writeFirstBreak(b *strings.Builder, r *Record) {
	b.WriteString("### What broke first\n\n")
	sum := Summarize(r)
	if sum.FirstBreak == nil {
		b.WriteString("Nothing broke: the run recorded no deviation, abort or error.\n\n")
		return
	}
	e := *sum.FirstBreak

	what := map[EventKind]string{
		EventDeviation: "the steady state deviated",
		EventAbort:     "the run was aborted",
		EventError:     "the run hit an error",
	}[e.Kind]
	fmt.Fprintf(b, "At **%s** %s", formatOffset(e.At), what)
	if e.Source != "" {
		fmt.Fprintf(b, " (%s)", code(e.Source))
	}
	if msg := oneLine(e.Message); msg != "" {
		b.WriteString(": " + msg)
	}
	b.WriteString("\n\n")

	if len(e.Values) > 0 {
		t := table{header: []string{"Value", "Observed"}}
		for _, k := range sortedKeys(e.Values) {
			t.add(code(k), formatValue(e.Values[k]))
		}
		t.write(b)
	}

	live := sum.LiveAtFirstBreak
	if len(live) == 0 {
		b.WriteString("No fault was live at that moment.\n\n")
		return
	}
	b.WriteString("Live at that moment:\n\n")
	for _, f := range live {
		fmt.Fprintf(b, "- %s, injected at %s\n", describeFault(f), offsetOf(r, f.InjectedAt))
	}
	b.WriteString("\n")
}

func writeProbes(b *strings.Builder, r *Record) {
	b.WriteString("### Probes\n\n")
	probes := Summarize(r).Probes
	if len(probes) == 0 {
		b.WriteString("_No probe observations were recorded._\n\n")
		return
	}

	t := table{header: []string{"Probe", "Observations", "Failed", "First failure", "Latency min / median / max"}}
	for _, s := range probes {
		name := "(unnamed)"
		if s.Probe != "" {
			name = code(s.Probe)
		}
		failed, first := "0", "—"
		if s.Failed > 0 {
			failed = fmt.Sprintf("**%d** (%.1f%%)", s.Failed, 100*float64(s.Failed)/float64(s.Observations))
			first = formatOffset(s.FirstFailure)
		}
		latency := "—"
		if n := len(s.Latencies); n > 0 {
			latency = formatDuration(s.Latencies[0]) + " / " +
				formatDuration(median(s.Latencies)) + " / " +
				formatDuration(s.Latencies[n-1])
		}
		t.add(name, strconv.Itoa(s.Observations), failed, first, latency)
	}
	t.write(b)
	var skipped []string
	for _, name := range sortedKeys(r.SkippedTicks) {
		if n := r.SkippedTicks[name]; n > 0 {
			skipped = append(skipped, fmt.Sprintf("%s %d", code(name), n))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(b, "Skipped ticks (an observation outlasted its interval; probes never overlap themselves): %s.\n\n", strings.Join(skipped, ", "))
	}
	writeResponseCaps(b, r)
	writeTimelineGap(b, r)
}

func writeLeftovers(b *strings.Builder, r *Record) {
	if len(r.Leftovers) == 0 {
		return
	}
	b.WriteString("### ⚠️ Leftovers — something may still be broken\n\n")
	b.WriteString("**The run could not confirm that these were reverted. Until someone has checked them, treat these targets as still under fault.**\n\n")
	for _, l := range r.Leftovers {
		b.WriteString("- " + oneLine(l) + "\n")
	}
	b.WriteString("\n")
}

func writeNext(b *strings.Builder, r *Record) {
	b.WriteString("### What to look at next\n\n")
	b.WriteString(strings.Join(nextSteps(r), "\n\n") + "\n")
}

// nextSteps are the paragraphs of "what to look at next", in Markdown
// (code spans and bold): the Markdown report prints them as they are, the
// HTML report turns their code spans into <code>.
func nextSteps(r *Record) []string {
	var p []string
	switch r.Verdict {
	case Passed:
		p = append(p,
			"The service took these faults the way its owners expected. An experiment that always passes stops teaching anything: next time, raise the fault intensity (a longer delay, a longer window, more targets) or add a fault this service has not met yet.",
			"Running the experiment on a schedule (`chaos schedule`) turns this result into a regression check.")
	case Failed:
		p = nextFailed(r)
	case Aborted:
		p = nextAborted(r)
	case Refused:
		p = nextRefused(r)
	case Invalid:
		file := "the experiment file"
		if r.Experiment.File != "" {
			file = code(r.Experiment.File)
		}
		p = append(p,
			"Nothing was injected, so the service was not touched. Fix "+file+" or its environment as the reason above says, then run the experiment again.",
			"`chaos run --dry-run` resolves the targets and prints the plan without injecting anything, which is a quick way to check the fix.")
	default: // Error, and any verdict this version does not know.
		if len(r.Leftovers) > 0 {
			p = append(p,
				"Deal with the leftovers first: each may still be degrading a target. Run `chaos recover` to revert whatever the run's ledger still lists as open, then check the targets by hand.")
		} else {
			p = append(p, "Every fault that was injected was confirmed reverted, so nothing should be left behind.")
		}
		again := "Run the experiment again"
		if len(r.Leftovers) > 0 {
			again += " once the leftovers are cleared"
		}
		p = append(p, "This verdict is about the runner or a plugin, not a finding about your service: the error is under What broke first. "+
			again+", and tell whoever runs chaos for you if the error repeats.")
	}
	return p
}

// refusalAdvice says what clears a refusal of this cause; "" for a cause
// it does not know. The causes are the stable words the engine and the CLI
// record (report.json "cause").
func refusalAdvice(c Cause) string {
	switch c {
	case "kill-switch":
		return "The kill switch is engaged: someone ran `chaos abort` to stop every experiment on this state directory. Ask them before releasing it with `chaos abort --clear`."
	case "target-locked":
		return "Another run holds a target of this experiment. Wait for it to finish (its run id is in the reason above); two experiments on one target would make both results meaningless."
	case "ledger-open":
		return "A run that died left faults on these targets that were never confirmed reverted. Run `chaos recover` to revert them, check the targets, then run this experiment again."
	case "error-budget":
		return "Less error budget is left than this experiment may spend. Run it once the budget has recovered, or lower `budget.errorBudget.maxSpend`."
	case "error-budget-unknown":
		return "The query for the remaining error budget could not be answered, so the spend could not be admitted. Check `budget.errorBudget.remaining` and that its Prometheus answers."
	case "plugin-refused":
		return "A plugin found its target unavailable (for example, its listen address is already in use by another process). Free it, then run the experiment again."
	case "disk-full":
		return "The disk under the state directory is full, so the fault ledger could not be written and nothing was asked of any plugin. Free space, then run the experiment again."
	}
	return ""
}

func nextRefused(r *Record) []string {
	p := []string{"Nothing was touched: the environment said no before any fault was prepared or injected. This is not a finding about your service, and nothing is wrong with the experiment file."}
	if a := refusalAdvice(r.Cause); a != "" {
		return append(p, a)
	}
	return append(p, "Clear the cause in the reason above, then run the experiment again.")
}

func nextFailed(r *Record) []string {
	sum := Summarize(r)
	at, what, found := breachClause(sum.FirstBreach)
	anyInjected := slices.ContainsFunc(r.Faults, func(f Fault) bool { return !f.InjectedAt.IsZero() })
	if !anyInjected {
		p := []string{"No fault was injected: the steady state did not hold before the experiment, so the service was already unhealthy when the run began, or the steady-state expressions do not describe it."}
		if found {
			p = append(p, fmt.Sprintf("Start with the first breach: at %s, %s.", formatOffset(at), what))
		}
		return append(p, "Fix the service or the expressions, then run the experiment again.")
	}
	if !found {
		return []string{
			"The run recorded no breach in detail. Start from the reason above and the steady-state table, and compare the probes' latency and failures during the faults with before them.",
			"When a fix is in, run the experiment again: a passing run is the evidence that it worked.",
		}
	}
	p := []string{fmt.Sprintf("Start with the first breach: at %s, %s.", formatOffset(at), what)}
	if live := sum.LiveAtFirstBreach; len(live) > 0 {
		descs := make([]string, len(live))
		for i, f := range live {
			descs[i] = describeFault(f)
		}
		p = append(p, fmt.Sprintf("At that moment the live %s %s. Look at how the service handles that: timeouts, retries, fallbacks and capacity on its path to the target.",
			pluralWord(len(live), "fault was", "faults were"), strings.Join(descs, "; ")))
	} else {
		p = append(p, "No fault was live at that moment, so look at what the earlier faults left behind (caches, connection pools, queues) and at how long the service takes to recover.")
	}
	return append(p, "When a fix is in, run the experiment again: a passing run is the evidence that it worked.")
}

func nextAborted(r *Record) []string {
	var p []string
	if e, ok := firstOfKind(r, EventAbort); ok {
		s := fmt.Sprintf("Find the budget that tripped: at %s", formatOffset(e.At))
		if e.Source != "" {
			s += " " + code(e.Source)
		}
		s += " stopped the run"
		if msg := oneLine(e.Message); msg != "" {
			s += ": " + strings.TrimSuffix(msg, ".")
		}
		p = append(p, s+".")
	} else {
		p = append(p, "Find the budget that tripped: the reason above names it.")
	}
	return append(p,
		"Every fault was reverted, so the service should be back to normal; confirm it on its own dashboards.",
		"Then decide which was wrong. If the service degrades faster than the budget allows, that is a finding in itself. If the budget is too tight for this fault, lower the fault intensity or shorten its window before running again.")
}

// breachClause says the first breach as a clause: "`expr` stopped holding
// (detail)".
func breachClause(b *Breach) (time.Duration, string, bool) {
	if b == nil {
		return 0, "", false
	}
	if b.Expression != "" {
		what := code(b.Expression) + " stopped holding"
		if d := oneLine(b.Detail); d != "" {
			what += " (" + strings.TrimSuffix(d, ".") + ")"
		}
		return b.At, what, true
	}
	what := "the steady state deviated"
	if b.Source != "" {
		what = code(b.Source) + " reported a deviation"
	}
	if msg := oneLine(b.Message); msg != "" {
		what += " (" + strings.TrimSuffix(msg, ".") + ")"
	}
	return b.At, what, true
}

func describeFault(f Fault) string {
	s := code(f.Plugin) + " on " + code(f.Target)
	if len(f.Params) > 0 {
		s += " (" + params(f.Params, "") + ")"
	}
	return s
}

func verdictTitle(v Verdict) string {
	switch v {
	case Passed:
		return "✅ Passed"
	case Failed:
		return "❌ Failed"
	case Aborted:
		return "🛑 Aborted"
	case Invalid:
		return "🚫 Invalid"
	case Refused:
		return "⛔ Refused"
	case Error:
		return "⚠️ Error"
	case "":
		return "⚠️ No verdict"
	default:
		return "⚠️ " + capitalize(oneLine(string(v)))
	}
}

func phaseRank(p Phase) int {
	switch p {
	case Before:
		return 0
	case During:
		return 1
	case After:
		return 2
	default:
		return 3
	}
}

func schedule(f Fault) string {
	when := "from the start"
	if f.After > 0 {
		when = "after " + formatDuration(f.After)
	}
	lasts := "until the fault phase ends"
	if f.For > 0 {
		lasts = "for " + formatDuration(f.For)
	}
	return when + ", " + lasts
}

func params(p map[string]string, none string) string {
	if len(p) == 0 {
		return none
	}
	parts := make([]string, 0, len(p))
	for _, k := range sortedKeys(p) {
		parts = append(parts, code(k+"="+p[k]))
	}
	return strings.Join(parts, ", ")
}

func offsetOf(r *Record, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return formatOffset(t.Sub(r.StartedAt))
}

// formatOffset prints an offset from the start of the run: "+2.5s".
func formatOffset(d time.Duration) string {
	if d < 0 {
		return formatDuration(d)
	}
	return "+" + formatDuration(d)
}

// formatDuration rounds a duration to what a reader can use: milliseconds
// from a second up, tenths of a millisecond below that (a latency of 12.3ms),
// and microseconds below a millisecond, so a fast local probe does not read
// as "0s".
func formatDuration(d time.Duration) string {
	abs := d
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs >= time.Second:
		d = d.Round(time.Millisecond)
	case abs >= time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	default:
		d = d.Round(time.Microsecond)
	}
	return d.String()
}

// latencyOf reads a probe's latency value. The engine records a duration
// string such as "12.3ms"; a time.Duration and a number of seconds (as a
// float) are accepted too. A bare integer is not, because it could as well be
// nanoseconds as seconds, and a wrong guess would mislead more than a gap.
func latencyOf(v any) (time.Duration, bool) {
	switch x := v.(type) {
	case time.Duration:
		return x, true
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		return d, err == nil
	case float64:
		return secondsToDuration(x)
	case float32:
		return secondsToDuration(float64(x))
	default:
		return 0, false
	}
}

func secondsToDuration(s float64) (time.Duration, bool) {
	ns := s * float64(time.Second)
	if math.IsNaN(ns) || math.IsInf(ns, 0) || math.Abs(ns) > math.MaxInt64 {
		return 0, false
	}
	return time.Duration(math.Round(ns)), true
}

// median of sorted durations; the mean of the middle two when the count is
// even.
func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	a, b := sorted[n/2-1], sorted[n/2]
	return a + (b-a)/2
}

// formatValue prints an event value for people: durations rounded, numbers
// without exponents, composite values as JSON (whose map keys are sorted, so
// the output is stable).
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case time.Duration:
		return formatDuration(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	default:
		if data, err := json.Marshal(x); err == nil {
			return string(data)
		}
		return fmt.Sprint(x)
	}
}

// table collects the rows of a Markdown table and writes them with every
// cell made safe: one line, and a "|" in the content escaped so it cannot
// split the cell (GitHub honours the escape inside code spans too).
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	writeRow(b, t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
	}
	writeRow(b, sep)
	for _, r := range t.rows {
		writeRow(b, r)
	}
	b.WriteString("\n")
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		c = strings.ReplaceAll(oneLine(c), "|", `\|`)
		if c == "" {
			b.WriteString(" |")
			continue
		}
		b.WriteString(" " + c + " |")
	}
	b.WriteString("\n")
}

// code puts s in a code span, with a fence longer than any run of backticks
// inside it, as CommonMark asks.
func code(s string) string {
	s = oneLine(s)
	if s == "" {
		return ""
	}
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	// CommonMark strips one space from each end of a code span that has one
	// at both ends, and a backtick at an end would join the fence.
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") ||
		(strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ") && strings.TrimSpace(s) != "") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// oneLine folds line breaks into spaces, because a line break ends a table
// row, a list item or a heading.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return strings.TrimSpace(s)
	}
	return strings.Join(strings.Fields(s), " ")
}

// capitalize starts a sentence with a capital, but only when it starts with
// a plain word: a reason that starts with a file name or an expression must
// be left as written.
func capitalize(s string) string {
	word, _, _ := strings.Cut(s, " ")
	for _, r := range word {
		if !unicode.IsLetter(r) {
			return s
		}
	}
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

func plural(n int, one, many string) string {
	return strconv.Itoa(n) + " " + pluralWord(n, one, many)
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
