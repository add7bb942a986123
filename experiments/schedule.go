package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// The other kinds of file the format knows besides Experiment: a Schedule
// says when experiments run on their own (`chaos schedule`), a GameDay is an
// ordered list of experiments a team runs together, with checkpoints where a
// person confirms (`chaos gameday`). Both name experiment files; neither
// holds one.
const (
	KindSchedule = "Schedule"
	KindGameDay  = "GameDay"
)

// Concurrency policies of a schedule entry, as a Kubernetes CronJob has
// them. chaos never runs two experiments on one target (the target locks
// make sure), so a policy decides what a fire does while a conflicting run
// (one of the same entry, or one on a target the entry's experiments
// name) is live.
const (
	// ConcurrencyForbid skips the fire.
	ConcurrencyForbid = "Forbid"
	// ConcurrencyAllow waits for the conflicting runs to end, as long as
	// the starting deadline allows, then runs.
	ConcurrencyAllow = "Allow"
	// ConcurrencyReplace cancels the entry's own live run (it aborts and
	// reverts) and runs; it waits, as Allow does, for other entries' runs.
	ConcurrencyReplace = "Replace"
)

// Schedule is a schedule file: entries that run experiment files on cron,
// inside allowed windows and outside freezes.
type Schedule struct {
	Pos        Pos          `yaml:"-"`
	APIVersion string       `yaml:"apiVersion" required:"true" enum:"chaos/v1" doc:"The version of the format: chaos/v1."`
	Kind       string       `yaml:"kind" required:"true" enum:"Schedule" doc:"Always Schedule."`
	Metadata   ListMetadata `yaml:"metadata" required:"true" doc:"The schedule's name."`
	Spec       ScheduleSpec `yaml:"spec" required:"true" doc:"When which experiments run."`

	// File is the path the schedule was read from; the entries' experiment
	// patterns are relative to its directory.
	File string `yaml:"-"`

	positions map[string]FieldPos
}

// ListMetadata names a file that lists experiments (a schedule, a game day).
type ListMetadata struct {
	Pos    Pos               `yaml:"-"`
	Name   string            `yaml:"name" required:"true" doc:"A short name: lowercase letters, digits and '-', at most 63 characters."`
	Owner  *Owner            `yaml:"owner" doc:"Who runs it; each experiment's report still goes to that experiment's owner."`
	Labels map[string]string `yaml:"labels" doc:"Kubernetes-style labels."`
}

// ScheduleSpec is what a schedule says. Time zone and windows given here
// are the defaults of every entry.
type ScheduleSpec struct {
	Pos          Pos                   `yaml:"-"`
	TimeZone     string                `yaml:"timeZone" default:"UTC" doc:"IANA time zone of the cron expressions, windows and freeze dates, e.g. Europe/Berlin. Default UTC."`
	Windows      []*Window             `yaml:"windows" doc:"When runs are allowed; a fire outside every window is skipped. None means always."`
	Freezes      []*Freeze             `yaml:"freezes" doc:"Periods no run starts in (release freezes, holidays)."`
	FreezeFile   string                `yaml:"freezeFile" doc:"A file the release process writes (freezes: [{from, to, reason}]), read before every run, relative to this file. Missing means no freeze; unreadable or invalid skips the run."`
	Alertmanager *AlertmanagerSettings `yaml:"alertmanager" doc:"Ask this Alertmanager before every run whether an incident is open."`
	Entries      []*ScheduleEntry      `yaml:"entries" required:"true" doc:"What runs when."`
}

// ScheduleEntry runs experiment files on a cron expression.
type ScheduleEntry struct {
	Pos         Pos       `yaml:"-"`
	Name        string    `yaml:"name" required:"true" doc:"The entry's name, unique in the file: it names its reports and metrics."`
	Experiments []string  `yaml:"experiments" required:"true" doc:"Experiment files or globs, relative to the schedule file; run one after the other at each fire."`
	Cron        string    `yaml:"cron" required:"true" doc:"When: a cron expression with an optional seconds field first (\"0 30 10 * * mon-fri\", \"30 10 * * 1-5\") or a descriptor (@daily, @every 1h)."`
	TimeZone    string    `yaml:"timeZone" doc:"IANA time zone of this entry; default the schedule's."`
	Windows     []*Window `yaml:"windows" doc:"Allowed windows of this entry; default the schedule's."`
	// ConcurrencyPolicy says what a fire does while a conflicting run is live.
	ConcurrencyPolicy string            `yaml:"concurrencyPolicy" enum:"Forbid,Allow,Replace" default:"Forbid" doc:"While a run of this entry or on one of its targets is live: Forbid skips the fire, Allow waits for it (within the starting deadline), Replace aborts this entry's own live run and starts. Default Forbid."`
	StartingDeadline  time.Duration     `yaml:"startingDeadline" default:"1m" doc:"A run that cannot start within this of its time (the scheduler was down or busy, or waited for a conflict) is skipped as missed. Default 1m."`
	Alerts            map[string]string `yaml:"alerts" doc:"Label matchers: while an alert with all these labels fires in the Alertmanager, the entry does not run. Needs spec.alertmanager."`
}

// Window is a span of the day, on some days of the week, when runs may
// start.
type Window struct {
	Pos  Pos      `yaml:"-"`
	Days []string `yaml:"days" enum:"mon,tue,wed,thu,fri,sat,sun" doc:"Days of the week; none means every day."`
	From string   `yaml:"from" required:"true" doc:"Start of the window, HH:MM (24 hours), in the entry's time zone."`
	To   string   `yaml:"to" required:"true" doc:"End of the window, HH:MM, after from; 24:00 is the end of the day."`
}

// Freeze is a period no run starts in.
type Freeze struct {
	Pos    Pos    `yaml:"-"`
	From   string `yaml:"from" required:"true" doc:"First day (2025-12-20, from its start) or instant (RFC 3339) of the freeze."`
	To     string `yaml:"to" required:"true" doc:"Last day (2026-01-05, to its end) or instant (RFC 3339) of the freeze."`
	Reason string `yaml:"reason" doc:"Why, for the log and the skipped run's record."`
}

// AlertmanagerSettings is where the schedule asks about open incidents.
type AlertmanagerSettings struct {
	Pos     Pos           `yaml:"-"`
	URL     string        `yaml:"url" required:"true" doc:"Base URL of the Alertmanager, e.g. http://alertmanager:9093."`
	Timeout time.Duration `yaml:"timeout" default:"5s" doc:"Bound of each call; an Alertmanager that does not answer in time skips the run. Default 5s."`
}

// FreezeList is the content of a freeze file.
type FreezeList struct {
	Pos     Pos       `yaml:"-"`
	Freezes []*Freeze `yaml:"freezes" doc:"The freezes in force."`

	positions map[string]FieldPos
}

// GameDay is a game day file: experiments a team runs in order, with
// checkpoints where a person confirms before the next.
type GameDay struct {
	Pos        Pos          `yaml:"-"`
	APIVersion string       `yaml:"apiVersion" required:"true" enum:"chaos/v1" doc:"The version of the format: chaos/v1."`
	Kind       string       `yaml:"kind" required:"true" enum:"GameDay" doc:"Always GameDay."`
	Metadata   ListMetadata `yaml:"metadata" required:"true" doc:"The game day's name; chaos gameday continue NAME names it."`
	Spec       GameDaySpec  `yaml:"spec" required:"true" doc:"The steps, in order."`

	File      string `yaml:"-"`
	positions map[string]FieldPos
}

// GameDaySpec lists the game day's steps.
type GameDaySpec struct {
	Pos   Pos            `yaml:"-"`
	Steps []*GameDayStep `yaml:"steps" required:"true" doc:"Experiments and checkpoints, in the order they happen."`
}

// GameDayStep is one experiment, or one checkpoint where a person confirms.
type GameDayStep struct {
	Pos        Pos    `yaml:"-"`
	Experiment string `yaml:"experiment" oneof:"kind" doc:"An experiment file, relative to the game day file."`
	Checkpoint string `yaml:"checkpoint" oneof:"kind" doc:"What a person checks before the game day goes on (chaos gameday continue NAME, or Enter at the terminal)."`
}

// KindOf reads the kind of the first YAML document of data, "" when it
// does not say: which loader a file is for. It never fails; the loader
// reports what is wrong.
func KindOf(data []byte) string {
	var head struct {
		Kind string `yaml:"kind"`
	}
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return ""
	}
	return head.Kind
}

// LoadSchedule reads and checks one schedule file.
func LoadSchedule(path string) (*Schedule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schedule: %w", err)
	}
	return ParseSchedule(path, data)
}

// ParseSchedule checks one schedule file's contents: a *FileError with every
// problem, or the schedule with its defaults applied.
func ParseSchedule(file string, data []byte) (*Schedule, error) {
	s := &Schedule{positions: map[string]FieldPos{}, File: file}
	probs, ok := parseList(data, s, s.positions, "a schedule starts with apiVersion: chaos/v1 and kind: Schedule")
	if ok {
		validateSchedule(s, &probs)
	}
	return finish(file, s, probs)
}

// LoadGameDay reads and checks one game day file.
func LoadGameDay(path string) (*GameDay, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read game day: %w", err)
	}
	return ParseGameDay(path, data)
}

// ParseGameDay checks one game day file's contents.
func ParseGameDay(file string, data []byte) (*GameDay, error) {
	g := &GameDay{positions: map[string]FieldPos{}, File: file}
	probs, ok := parseList(data, g, g.positions, "a game day starts with apiVersion: chaos/v1 and kind: GameDay")
	if ok {
		validateGameDay(g, &probs)
	}
	return finish(file, g, probs)
}

// ParseFreezeList checks a freeze file's contents; loc is the zone its
// dates are in.
func ParseFreezeList(file string, data []byte, loc *time.Location) ([]Period, error) {
	l := &FreezeList{positions: map[string]FieldPos{}}
	probs, ok := parseList(data, l, l.positions, "a freeze file holds freezes: [{from: 2025-12-20, to: 2026-01-05, reason: ...}]")
	var periods []Period
	if ok {
		c := newDocChecker(l.positions, l.Pos, &probs)
		if !c.bad[""] {
			periods = validateFreezes(c, "freezes", l.Freezes, loc)
		}
	}
	if _, err := finish(file, l, probs); err != nil {
		return nil, err
	}
	return periods, nil
}

func finish[T any](file string, v *T, probs []Problem) (*T, error) {
	if len(probs) > 0 {
		SortProblems(probs)
		return nil, &FileError{File: file, Problems: probs}
	}
	return v, nil
}

// parseList decodes one YAML document strictly into out, recording the
// positions of its values, and returns what decoding found wrong. ok is
// false when there is nothing to validate (a syntax error, an empty file);
// otherwise validation goes on and keeps quiet about the paths decoding
// already reported.
func parseList(data []byte, out any, positions map[string]FieldPos, emptyHint string) (probs []Problem, ok bool) {
	var doc yaml.Node
	docs := yaml.NewDecoder(bytes.NewReader(data))
	if err := docs.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return []Problem{yamlSyntaxProblem(err)}, false
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return []Problem{{Pos: Pos{Line: 1, Col: 1}, Message: "file is empty", Hint: emptyHint}}, false
	}
	strictyaml.DecodeWith(&doc, out, &probs, strictyaml.Options{Index: positions})
	if p, ok := nextDocument(docs, data); ok {
		probs = append(probs, p)
	}
	return probs, true
}
