package experiments

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// docChecker collects problems for a schedule, game day or freeze file,
// positioned by path, as checker does for experiments.
type docChecker struct {
	positions map[string]FieldPos
	root      Pos
	probs     *[]Problem
	bad       map[string]bool
}

func newDocChecker(positions map[string]FieldPos, root Pos, probs *[]Problem) docChecker {
	c := docChecker{positions: positions, root: root, probs: probs, bad: map[string]bool{}}
	for _, p := range *probs {
		c.bad[p.Path] = true
	}
	return c
}

func (c docChecker) lookup(path string) FieldPos {
	for p := path; ; p = parentPath(p) {
		if f, ok := c.positions[p]; ok && f.Value.Line > 0 {
			return f
		}
		if p == "" {
			break
		}
	}
	if c.root.Line > 0 {
		return FieldPos{Value: c.root}
	}
	return FieldPos{Value: Pos{Line: 1, Col: 1}}
}

func (c docChecker) broken(path string) bool {
	return checker{bad: c.bad}.broken(path)
}

func (c docChecker) has(path string) bool {
	_, ok := c.positions[path]
	return ok
}

// at reports a problem about the value at path.
func (c docChecker) at(path, msg, hint string) {
	if c.broken(path) {
		return
	}
	*c.probs = append(*c.probs, Problem{Pos: c.lookup(path).Value, Path: path, Message: msg, Hint: hint})
}

// key reports a problem at the key of path (a missing field, a field wrong
// as a whole).
func (c docChecker) key(path, msg, hint string) {
	if c.bad[path] {
		return
	}
	fp := c.lookup(path)
	at := fp.Key
	if at.Line == 0 {
		at = fp.Value
	}
	*c.probs = append(*c.probs, Problem{Pos: at, Path: path, Message: msg, Hint: hint})
}

func (c docChecker) missing(path, hint string) {
	if c.broken(path) {
		return
	}
	c.key(path, lastSegment(path)+" is required", hint)
}

// envelope checks apiVersion, kind and metadata.name.
func (c docChecker) envelope(apiVersion, kind, want string, m *ListMetadata) {
	switch {
	case apiVersion == "":
		c.missing("apiVersion", "apiVersion: "+APIVersion)
	case apiVersion != APIVersion:
		c.at("apiVersion", fmt.Sprintf("apiVersion must be %q, got %q", APIVersion, apiVersion), "this chaos reads "+APIVersion)
	}
	switch {
	case kind == "":
		c.missing("kind", "kind: "+want)
	case kind != want:
		c.at("kind", fmt.Sprintf("kind must be %q, got %q", want, kind), strictyaml.DidYouMean(kind, []string{want}, ""))
	}
	switch {
	case m.Name == "":
		c.missing("metadata.name", "a short name like weekday-gamedays")
	case len(m.Name) > 63 || !namePattern.MatchString(m.Name):
		c.at("metadata.name", fmt.Sprintf("metadata.name %q must be lowercase letters, digits and '-', at most 63 characters", strictyaml.Shorten(m.Name)),
			"e.g. "+suggestName(m.Name))
	}
}

// cronParser reads cron expressions with an optional seconds field first,
// as robfig/cron's WithSeconds does when it is there, and descriptors.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron reads a schedule entry's cron expression.
func ParseCron(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("the time zone goes in timeZone, not in the cron expression")
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", spec, err)
	}
	return s, nil
}

// DayWindow is a window of the day: minutes from midnight, [From, To), on
// the days set in Days (indexed by time.Weekday; all false means every day).
type DayWindow struct {
	Days     [7]bool
	From, To int
}

// Contains reports whether t (in its own location) falls in the window.
func (w DayWindow) Contains(t time.Time) bool {
	if w.Days != [7]bool{} && !w.Days[t.Weekday()] {
		return false
	}
	m := t.Hour()*60 + t.Minute()
	return m >= w.From && m < w.To
}

// String is the window as a file writes it.
func (w DayWindow) String() string {
	var days []string
	for i, d := range weekdays {
		if w.Days[(i+1)%7] {
			days = append(days, d)
		}
	}
	s := fmt.Sprintf("%02d:%02d-%02d:%02d", w.From/60, w.From%60, w.To/60, w.To%60)
	if len(days) > 0 {
		s = strings.Join(days, ",") + " " + s
	}
	return s
}

// weekdays in file order; index i is time.Weekday (i+1)%7.
var weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

// Compile turns the window of the file into a DayWindow.
func (w *Window) Compile() (DayWindow, error) {
	var d DayWindow
	for _, day := range w.Days {
		i := indexOf(weekdays, strings.ToLower(day))
		if i < 0 {
			return d, fmt.Errorf("day %q: %w", day, errBadDay)
		}
		d.Days[(i+1)%7] = true
	}
	var err error
	if d.From, err = clockMinutes(w.From); err != nil {
		return d, fmt.Errorf("from: %w", err)
	}
	if d.To, err = clockMinutes(w.To); err != nil {
		return d, fmt.Errorf("to: %w", err)
	}
	if d.To <= d.From {
		return d, fmt.Errorf("to %s is not after from %s: %w", w.To, w.From, errEmptyWindow)
	}
	return d, nil
}

// Causes of a window or freeze that cannot be compiled.
var (
	errBadDay      = errors.New("not a day of the week")
	errEmptyWindow = errors.New("the window is empty")
)

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// clockMinutes reads HH:MM as minutes from midnight; 24:00 is the end of
// the day.
func clockMinutes(s string) (int, error) {
	if s == "24:00" {
		return 24 * 60, nil
	}
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Period is a freeze: no run starts in [From, To).
type Period struct {
	From, To time.Time
	Reason   string
}

// Contains reports whether t is inside the freeze.
func (p Period) Contains(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// Compile reads the freeze's bounds: a date means the whole day in loc (to
// the end of the `to` day), an RFC 3339 time means that instant.
func (f *Freeze) Compile(loc *time.Location) (Period, error) {
	from, _, err := instant(f.From, loc)
	if err != nil {
		return Period{}, fmt.Errorf("from: %w", err)
	}
	to, toDate, err := instant(f.To, loc)
	if err != nil {
		return Period{}, fmt.Errorf("to: %w", err)
	}
	if toDate {
		to = to.AddDate(0, 0, 1)
	}
	if !to.After(from) {
		return Period{}, fmt.Errorf("to %s is before from %s: %w", f.To, f.From, errEmptyWindow)
	}
	return Period{From: from, To: to, Reason: f.Reason}, nil
}

func instant(s string, loc *time.Location) (time.Time, bool, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is neither a date (2025-12-20) nor an RFC 3339 time (2025-12-20T18:00:00+01:00)", s)
}

func validateSchedule(s *Schedule, probs *[]Problem) {
	c := newDocChecker(s.positions, s.Pos, probs)
	if c.bad[""] {
		return
	}
	c.envelope(s.APIVersion, s.Kind, KindSchedule, &s.Metadata)
	if !c.has("spec") {
		c.missing("spec", "spec holds the entries, and the time zone, windows and freezes they share")
		return
	}
	sp := &s.Spec
	if sp.TimeZone == "" {
		sp.TimeZone = "UTC"
	}
	loc := checkZone(c, "spec.timeZone", sp.TimeZone)
	for i, w := range sp.Windows {
		checkWindow(c, fmt.Sprintf("spec.windows[%d]", i), w)
	}
	validateFreezes(c, "spec.freezes", sp.Freezes, loc)
	if strings.ContainsAny(sp.FreezeFile, "*?[") {
		c.at("spec.freezeFile", "freezeFile names one file, not a glob", "")
	}
	if a := sp.Alertmanager; a != nil {
		if u, err := url.Parse(a.URL); a.URL == "" {
			c.missing("spec.alertmanager.url", "e.g. url: http://alertmanager:9093")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.at("spec.alertmanager.url", fmt.Sprintf("%q is not an http or https URL", strictyaml.Shorten(a.URL)), "e.g. http://alertmanager:9093")
		}
		if a.Timeout == 0 {
			a.Timeout = 5 * time.Second
		}
		if a.Timeout < 0 || a.Timeout > time.Minute {
			c.at("spec.alertmanager.timeout", fmt.Sprintf("timeout %s must be above 0 and at most 1m", a.Timeout), "the run waits for it; 5s is plenty for an Alertmanager nearby")
		}
	}
	if len(sp.Entries) == 0 {
		c.key("spec.entries", "spec.entries must list at least one entry", "e.g. - {name: nightly, experiments: [checkout-latency.yaml], cron: \"0 30 10 * * mon-fri\"}")
	}
	names := map[string]string{}
	for i, e := range sp.Entries {
		path := fmt.Sprintf("spec.entries[%d]", i)
		validateEntry(c, path, e, s)
		if e.Name != "" {
			if prev, dup := names[e.Name]; dup {
				c.at(path+".name", fmt.Sprintf("entry name %q is used twice", e.Name), "first at "+c.lookup(prev).Value.String()+"; names must be unique: they name reports and metrics")
			} else {
				names[e.Name] = path + ".name"
			}
		}
		if len(e.Alerts) > 0 && sp.Alertmanager == nil {
			c.key(path+".alerts", "alerts need spec.alertmanager to ask", "add spec.alertmanager: {url: http://alertmanager:9093}")
		}
	}
}

func validateEntry(c docChecker, path string, e *ScheduleEntry, s *Schedule) {
	switch {
	case e.Name == "":
		c.missing(path+".name", "a short name like checkout-latency-weekdays")
	case len(e.Name) > 63 || !namePattern.MatchString(e.Name):
		c.at(path+".name", fmt.Sprintf("name %q must be lowercase letters, digits and '-', at most 63 characters", strictyaml.Shorten(e.Name)), "e.g. "+suggestName(e.Name))
	}
	if e.Cron == "" {
		c.missing(path+".cron", "e.g. cron: \"0 30 10 * * mon-fri\" (sec min hour day month weekday)")
	} else if _, err := ParseCron(e.Cron); err != nil {
		c.at(path+".cron", err.Error(), "fields: [sec] min hour day-of-month month day-of-week, or @daily, @every 1h")
	}
	if e.TimeZone != "" {
		checkZone(c, path+".timeZone", e.TimeZone)
	}
	for i, w := range e.Windows {
		checkWindow(c, fmt.Sprintf("%s.windows[%d]", path, i), w)
	}
	switch e.ConcurrencyPolicy {
	case "":
		e.ConcurrencyPolicy = ConcurrencyForbid
	case ConcurrencyForbid, ConcurrencyAllow, ConcurrencyReplace:
	default:
		all := []string{ConcurrencyForbid, ConcurrencyAllow, ConcurrencyReplace}
		c.at(path+".concurrencyPolicy", fmt.Sprintf("concurrencyPolicy %q is not one of %s", e.ConcurrencyPolicy, strings.Join(all, ", ")), strictyaml.DidYouMean(e.ConcurrencyPolicy, all, "allowed: "+strings.Join(all, ", ")))
	}
	switch {
	case !c.has(path + ".startingDeadline"):
		e.StartingDeadline = time.Minute
	case e.StartingDeadline <= 0:
		c.at(path+".startingDeadline", fmt.Sprintf("startingDeadline %s must be above 0", e.StartingDeadline), "e.g. 1m: how late a run may still start")
	}
	for _, k := range sortedKeys(e.Alerts) {
		if !labelName.MatchString(k) {
			c.at(path+".alerts."+k, fmt.Sprintf("alert label name %q is not a label name", k), "letters, digits and _")
		}
	}
	if len(e.Experiments) == 0 {
		c.key(path+".experiments", "experiments must name at least one file or glob", "e.g. experiments: [checkout-latency.yaml, nightly/*.yaml]")
	}
	for i, pat := range e.Experiments {
		p := fmt.Sprintf("%s.experiments[%d]", path, i)
		files, err := ExpandExperiments(s.File, pat)
		switch {
		case err != nil:
			c.at(p, err.Error(), "a file name or a glob like nightly/*.yaml, relative to the schedule file")
		case len(files) == 0:
			c.at(p, fmt.Sprintf("%q matches no file", pat), "relative to the schedule file's folder "+filepath.Dir(s.File))
		}
	}
}

// ExpandExperiments is the experiment files pattern names, relative to
// the folder of the file that names it, sorted.
func ExpandExperiments(file, pattern string) ([]string, error) {
	if pattern == "" {
		return nil, fmt.Errorf("empty experiment file name")
	}
	p := pattern
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(file), p)
	}
	files, err := filepath.Glob(p)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid glob: %w", pattern, err)
	}
	sort.Strings(files)
	return files, nil
}

func checkZone(c docChecker, path, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		c.at(path, fmt.Sprintf("time zone %q is not an IANA time zone", name), "e.g. UTC, Europe/Berlin, America/New_York")
		return time.UTC
	}
	return loc
}

func checkWindow(c docChecker, path string, w *Window) {
	if w.From == "" {
		c.missing(path+".from", "from: \"10:00\"")
	}
	if w.To == "" {
		c.missing(path+".to", "to: \"16:00\"")
	}
	if w.From == "" || w.To == "" {
		return
	}
	for i, d := range w.Days {
		if indexOf(weekdays, strings.ToLower(d)) < 0 {
			c.at(fmt.Sprintf("%s.days[%d]", path, i), fmt.Sprintf("%q is not a day of the week", d), strictyaml.DidYouMean(strings.ToLower(d), weekdays, "allowed: "+strings.Join(weekdays, ", ")))
			return
		}
	}
	if _, err := clockMinutes(w.From); err != nil {
		c.at(path+".from", "from: "+err.Error(), "quote it: from: \"10:00\"")
		return
	}
	if _, err := clockMinutes(w.To); err != nil {
		c.at(path+".to", "to: "+err.Error(), "quote it: to: \"16:00\"")
		return
	}
	if _, err := w.Compile(); err != nil {
		c.at(path+".to", err.Error(), "a window that crosses midnight is two windows: 22:00-24:00 and 00:00-02:00")
	}
}

func validateFreezes(c docChecker, path string, fs []*Freeze, loc *time.Location) []Period {
	var out []Period
	for i, f := range fs {
		p := fmt.Sprintf("%s[%d]", path, i)
		if f.From == "" || f.To == "" {
			if f.From == "" {
				c.missing(p+".from", "from: 2025-12-20")
			}
			if f.To == "" {
				c.missing(p+".to", "to: 2026-01-05")
			}
			continue
		}
		if _, _, err := instant(f.From, loc); err != nil {
			c.at(p+".from", "from: "+err.Error(), "")
			continue
		}
		if _, _, err := instant(f.To, loc); err != nil {
			c.at(p+".to", "to: "+err.Error(), "")
			continue
		}
		per, err := f.Compile(loc)
		if err != nil {
			c.at(p+".to", err.Error(), "to is the last day of the freeze, included")
			continue
		}
		out = append(out, per)
	}
	return out
}

func validateGameDay(g *GameDay, probs *[]Problem) {
	c := newDocChecker(g.positions, g.Pos, probs)
	if c.bad[""] {
		return
	}
	c.envelope(g.APIVersion, g.Kind, KindGameDay, &g.Metadata)
	if !c.has("spec") {
		c.missing("spec", "spec holds the steps: experiments and checkpoints")
		return
	}
	if len(g.Spec.Steps) == 0 {
		c.key("spec.steps", "spec.steps must list at least one experiment", "e.g. - experiment: checkout-latency.yaml")
	}
	n := 0
	for i, st := range g.Spec.Steps {
		p := fmt.Sprintf("spec.steps[%d]", i)
		switch {
		case st.Experiment != "" && st.Checkpoint != "":
			c.key(p+".checkpoint", "a step is an experiment or a checkpoint, not both", "make the checkpoint a step of its own before the experiment")
		case st.Experiment != "":
			n++
			files, err := ExpandExperiments(g.File, st.Experiment)
			switch {
			case err != nil:
				c.at(p+".experiment", err.Error(), "")
			case len(files) != 1:
				c.at(p+".experiment", fmt.Sprintf("%q must name exactly one file, it names %d", st.Experiment, len(files)), "relative to the game day file's folder "+filepath.Dir(g.File))
			}
		case st.Checkpoint != "":
		default:
			c.key(p, "a step needs experiment or checkpoint", "- experiment: checkout-latency.yaml, or - checkpoint: \"Dashboards green?\"")
		}
	}
	if len(g.Spec.Steps) > 0 && n == 0 && !c.broken("spec.steps") {
		c.key("spec.steps", "spec.steps has no experiment", "add - experiment: FILE")
	}
}

// Entry is the entry named name, or nil.
func (s *Schedule) Entry(name string) *ScheduleEntry {
	for _, e := range s.Spec.Entries {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Location is the entry's time zone: its own, or the schedule's.
func (s *Schedule) Location(e *ScheduleEntry) *time.Location {
	name := e.TimeZone
	if name == "" {
		name = s.Spec.TimeZone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC // validation refused it already
	}
	return loc
}

// Windows are the entry's allowed windows: its own, or the schedule's.
func (s *Schedule) Windows(e *ScheduleEntry) []DayWindow {
	ws := e.Windows
	if len(ws) == 0 {
		ws = s.Spec.Windows
	}
	out := make([]DayWindow, 0, len(ws))
	for _, w := range ws {
		if d, err := w.Compile(); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// Freezes are the schedule's own freeze periods (not its freeze file's).
func (s *Schedule) Freezes() []Period {
	loc, err := time.LoadLocation(s.Spec.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	out := make([]Period, 0, len(s.Spec.Freezes))
	for _, f := range s.Spec.Freezes {
		if p, err := f.Compile(loc); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// FreezeFilePath is the freeze file's path, relative to the schedule's
// folder, or "".
func (s *Schedule) FreezeFilePath() string {
	if s.Spec.FreezeFile == "" || filepath.IsAbs(s.Spec.FreezeFile) {
		return s.Spec.FreezeFile
	}
	return filepath.Join(filepath.Dir(s.File), s.Spec.FreezeFile)
}
