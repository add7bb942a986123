package reports

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The freshness gate: a release goes on only when every experiment it
// requires has recently shown that the service holds up. Pure logic over a
// history (ReadHistory); `chaos gate` is its command.

// ErrBadWithin means a --within value is not a duration.
var ErrBadWithin = errors.New("not a duration")

// GateStatus is what the gate says of one required experiment.
type GateStatus string

// The gate's statuses. Only GateFresh lets a release through.
const (
	// GateFresh: the latest run that tested the service passed, within
	// the limit.
	GateFresh GateStatus = "fresh"
	// GateStale: the latest run that tested the service passed, but
	// longer ago than the limit.
	GateStale GateStatus = "stale"
	// GateFailing: the latest run that tested the service did not pass
	// (failed or aborted): an older pass no longer speaks for the service.
	GateFailing GateStatus = "failing"
	// GateMissing: no run of a required experiment tested the service, or
	// no experiment matches a required pattern at all.
	GateMissing GateStatus = "missing"
)

// GateItem is the gate's finding about one experiment (or, for a pattern
// that matches none, about the pattern).
type GateItem struct {
	Pattern    string
	Experiment string // empty when the pattern matched no experiment
	Status     GateStatus
	// Latest is the run that decided, when there is one; Path its file.
	Latest *Record
	Path   string
	// Age is how long before the gate's time Latest started.
	Age time.Duration
	// Ignored counts the runs that said nothing about the service
	// (invalid, refused, error) and newer than Latest.
	Ignored int
}

// GateResult is the gate's decision.
type GateResult struct {
	Open  bool
	Items []GateItem
}

// decisive says whether a run's verdict is a finding about the service:
// passed, failed and aborted are; invalid, refused and error are about the
// file, the environment or the runner, and do not count either way.
func decisive(v Verdict) bool { return v == Passed || v == Failed || v == Aborted }

// CheckGatePatterns checks each pattern is a valid glob (path.Match).
func CheckGatePatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("--require %q: %w", p, err)
		}
	}
	return nil
}

// Gate decides, at now, whether every experiment whose name matches one of
// required has a passed run that started within the limit and that no
// later failed or aborted run contradicts. Records that start after now
// are left out (a gate replayed with --at sees the history as it was).
func Gate(history []HistoryRecord, required []string, within time.Duration, now time.Time) GateResult {
	res := GateResult{Open: true}
	for _, pat := range required {
		runs := map[string][]HistoryRecord{}
		for _, h := range history {
			if ok, _ := path.Match(pat, h.Record.Experiment.Name); ok && !h.Record.StartedAt.After(now) {
				runs[h.Record.Experiment.Name] = append(runs[h.Record.Experiment.Name], h)
			}
		}
		if len(runs) == 0 {
			res.Open = false
			res.Items = append(res.Items, GateItem{Pattern: pat, Status: GateMissing})
			continue
		}
		for _, name := range sortedKeys(runs) {
			item := gateItem(pat, name, runs[name], within, now)
			if item.Status != GateFresh {
				res.Open = false
			}
			res.Items = append(res.Items, item)
		}
	}
	return res
}

func gateItem(pat, name string, runs []HistoryRecord, within time.Duration, now time.Time) GateItem {
	// Newest first; the path breaks ties so the result never depends on
	// the order the directory was read in.
	slices.SortFunc(runs, func(a, b HistoryRecord) int {
		if c := b.Record.StartedAt.Compare(a.Record.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	item := GateItem{Pattern: pat, Experiment: name, Status: GateMissing}
	for _, h := range runs {
		if !decisive(h.Record.Verdict) {
			item.Ignored++
			continue
		}
		item.Latest, item.Path = h.Record, h.Path
		item.Age = now.Sub(h.Record.StartedAt)
		switch {
		case h.Record.Verdict != Passed:
			item.Status = GateFailing
		case item.Age > within:
			item.Status = GateStale
		default:
			item.Status = GateFresh
		}
		return item
	}
	return item
}

// ParseWithin reads a --within value: a Go duration ("36h", "90m"), days
// ("7d") or weeks ("2w"), or days or weeks followed by a Go duration
// ("1d12h").
func ParseWithin(s string) (time.Duration, error) {
	rest := strings.TrimSpace(s)
	var d time.Duration
	for _, unit := range []struct {
		suffix string
		size   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(rest, unit.suffix)
		if i <= 0 {
			continue
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 || n > 10000 {
			return 0, fmt.Errorf("%q: %w (e.g. 7d, 36h, 1d12h)", s, ErrBadWithin)
		}
		d += time.Duration(n) * unit.size
		rest = rest[i+1:]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q: %w (e.g. 7d, 36h, 1d12h)", s, ErrBadWithin)
		}
		d += more
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: %w: it must be longer than zero (e.g. 7d, 36h, 1d12h)", s, ErrBadWithin)
	}
	return d, nil
}

// Describe says the item in one line for the gate's output.
func (it GateItem) Describe(within time.Duration) string {
	age := func() string { return formatAge(it.Age) + " ago" }
	switch it.Status {
	case GateFresh:
		return fmt.Sprintf("passed %s (%s, within %s)", age(), it.Path, formatAge(within))
	case GateStale:
		return fmt.Sprintf("last passed %s, longer ago than %s (%s); run it again", age(), formatAge(within), it.Path)
	case GateFailing:
		return fmt.Sprintf("the latest run %s %s: %s (%s)", it.Latest.Verdict, age(), oneLine(it.Latest.Reason), it.Path)
	}
	if it.Experiment == "" {
		return fmt.Sprintf("no run of an experiment matching %q in the history", it.Pattern)
	}
	return fmt.Sprintf("no run that tested the service (%d invalid, refused or error)", it.Ignored)
}

// formatAge says an age in days and hours, or smaller units when short.
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d >= 24*time.Hour {
		days := d / (24 * time.Hour)
		hours := (d % (24 * time.Hour)) / time.Hour
		if hours == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, hours)
	}
	return d.Round(time.Second).String()
}
