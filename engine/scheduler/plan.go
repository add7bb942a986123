// Package scheduler runs the entries of a schedule file on their cron
// expressions, in their allowed windows and outside freezes, through the
// same engine.Runner as `chaos run` (so locks, ledger and kill switch all
// apply). The plan (next fire, skip reasons) and the concurrency policy are
// pure and tested on a fake clock; the loop only waits for the next fire.
//
// It must never run an experiment it cannot account for: every fire ends
// in a run (with its report) or a skip with a reason, logged and counted.
// Only leader election (RunElected and its fence around the Lease) speaks
// to Kubernetes; the loop knows of it only through Claims and the Leading
// function it is given.
package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// SkipReason says why a fire did not run, as a stable word (a metric label
// and a record's cause).
type SkipReason = reports.Cause

// Reasons a fire is skipped.
const (
	// SkipWindow: the fire is outside every allowed window.
	SkipWindow SkipReason = "window"
	// SkipFreeze: the fire is inside a freeze.
	SkipFreeze SkipReason = "freeze"
	// SkipFreezeUnknown: the freeze file could not be read; no guess.
	SkipFreezeUnknown SkipReason = "freeze-unknown"
	// SkipConcurrency: a conflicting run was live and the policy is Forbid.
	SkipConcurrency SkipReason = "concurrency"
	// SkipMissed: the run could not start within its starting deadline.
	SkipMissed SkipReason = "missed"
	// SkipIncident: an alert matching the entry is firing.
	SkipIncident SkipReason = "incident"
	// SkipAlertsUnknown: the Alertmanager could not be asked; no guess.
	SkipAlertsUnknown SkipReason = "alertmanager-unknown"
	// SkipStopping: the scheduler was stopping before the run could start.
	SkipStopping SkipReason = "stopping"
)

// Fire is one time an entry is due, and whether the plan skips it.
type Fire struct {
	Entry  string
	At     time.Time
	Skip   SkipReason // "" when the plan lets it run
	Detail string     // what the skip is about: the freeze's reason, the windows
}

// Plan is a schedule compiled: every entry's cron, zone and windows. It is
// pure: no clock, no files (freezes from the freeze file are passed in).
type Plan struct {
	entries []*planEntry
	freezes []experiments.Period
}

type planEntry struct {
	e       *experiments.ScheduleEntry
	cron    cron.Schedule
	loc     *time.Location
	windows []experiments.DayWindow
}

// Compile compiles a validated schedule.
func Compile(s *experiments.Schedule) (*Plan, error) {
	p := &Plan{freezes: s.Freezes()}
	for _, e := range s.Spec.Entries {
		c, err := experiments.ParseCron(e.Cron)
		if err != nil {
			return nil, fmt.Errorf("entry %s: %w", e.Name, err)
		}
		p.entries = append(p.entries, &planEntry{e: e, cron: c, loc: s.Location(e), windows: s.Windows(e)})
	}
	return p, nil
}

// Len is the number of entries.
func (p *Plan) Len() int { return len(p.entries) }

// next is entry i's first fire time strictly after t.
func (p *Plan) next(i int, t time.Time) time.Time {
	pe := p.entries[i]
	return pe.cron.Next(t.In(pe.loc))
}

// judge says whether entry i may run at at, given the freezes of the
// freeze file besides the schedule's own.
func (p *Plan) judge(i int, at time.Time, extra []experiments.Period) Fire {
	pe := p.entries[i]
	f := Fire{Entry: pe.e.Name, At: at}
	for _, fr := range slices.Concat(p.freezes, extra) {
		if fr.Contains(at) {
			f.Skip, f.Detail = SkipFreeze, cmp.Or(fr.Reason, "a freeze")+fmt.Sprintf(" (until %s)", fr.To.In(pe.loc).Format(time.DateTime))
			return f
		}
	}
	if len(pe.windows) == 0 {
		return f
	}
	local := at.In(pe.loc)
	for _, w := range pe.windows {
		if w.Contains(local) {
			return f
		}
	}
	f.Skip = SkipWindow
	f.Detail = "outside the allowed windows"
	for i, w := range pe.windows {
		sep := " "
		if i > 0 {
			sep = ", "
		}
		f.Detail += sep + w.String()
	}
	f.Detail += " " + pe.loc.String()
	return f
}

// Upcoming lists the next n fires after t, of every entry, in time order
// (ties in file order), each judged against the windows and freezes. It is
// what `chaos schedule --next` prints.
func (p *Plan) Upcoming(t time.Time, n int, extra []experiments.Period) []Fire {
	nexts := make([]time.Time, len(p.entries))
	for i := range p.entries {
		nexts[i] = p.next(i, t)
	}
	var out []Fire
	for len(out) < n {
		best := -1
		for i, at := range nexts {
			if at.IsZero() {
				continue // a cron that never fires again
			}
			if best < 0 || at.Before(nexts[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, p.judge(best, nexts[best], extra))
		nexts[best] = p.next(best, nexts[best])
	}
	return out
}

// between is entry i's fires in (from, to], oldest first: at most limit
// of them, the newest, and how many older ones were left out.
func (p *Plan) between(i int, from, to time.Time, limit int) ([]time.Time, int) {
	var out []time.Time
	dropped := 0
	for at := p.next(i, from); !at.IsZero() && !at.After(to); at = p.next(i, at) {
		if len(out) == limit {
			out = out[1:]
			dropped++
		}
		out = append(out, at)
	}
	return out, dropped
}

// count is how many fires entry i has in (from, to], counting at most
// limit; more says there were more.
func (p *Plan) count(i int, from, to time.Time, limit int) (n int, more bool) {
	for at := p.next(i, from); !at.IsZero() && !at.After(to); at = p.next(i, at) {
		if n == limit {
			return n, true
		}
		n++
	}
	return n, false
}

// Missed reports whether a fire due at at that starts at now is past its
// entry's starting deadline.
func Missed(at, now time.Time, deadline time.Duration) bool {
	return now.Sub(at) > deadline
}
