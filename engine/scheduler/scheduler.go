package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// ErrStopped is the cause the runs of a stopping scheduler are cancelled
// with, unless the caller's context says another.
var ErrStopped = errors.New("the scheduler is stopping")

// RunFunc runs one experiment file and returns its record, having written
// its reports into reportDir. engine.Runner's RunFile, with ReportDir set,
// is the real one.
type RunFunc func(ctx context.Context, path, reportDir string) *reports.Record

// Alerts says whether alerts matching labels are firing. An error means it
// could not be asked: the run is skipped, never guessed.
type Alerts interface {
	Firing(ctx context.Context, labels map[string]string) ([]string, error)
}

// Scheduler runs a schedule's entries. Schedule and RunFile are required;
// every other zero value has the default its comment gives.
type Scheduler struct {
	Schedule *experiments.Schedule
	RunFile  RunFunc
	// Clock defaults to the real clock.
	Clock clock.Clock
	// ReportDir receives a folder per run: ENTRY/TIME-EXPERIMENT.
	ReportDir string
	// Alerts is asked before every run of an entry with alerts; nil and an
	// entry with alerts skips the run (alertmanager-unknown).
	Alerts Alerts
	// Metrics, when set, is kept up to date.
	Metrics *Metrics
	// Log defaults to discarding.
	Log *slog.Logger
	// Fired, when set, is told every fire's outcome (tests wait on it).
	Fired func(Outcome)
	// Claims, with leader election, are the claims in the state directory
	// the replicas share. Every fire is decided under the claim of its
	// instant, run or skipped: the loop claims each instant a second
	// before it is due (claimAhead), a catch-up's instants are claimed by
	// their first fire, once for all of them (claimInstant), and the fires of an
	// instant another replica claimed are skipped as claimed, so no fire
	// runs twice across a change of leader. Run catches up the fires due
	// since the newest claimed instant (Claims.Resume; see catchUp) and
	// prunes old claims. Keep is at least KeepClaims of the schedule (zero
	// is that).
	Claims *Claims
	// Progress, for a single scheduler (no leader election), is its
	// record of how far it got, under the lock that keeps a second
	// scheduler of the schedule off the state directory (OpenProgress).
	// Run notes every fire it decides there, off the fire's path, and
	// catches up the fires due since each entry's record ends. Not with
	// Claims. With neither, nothing is recorded: a fire due while the
	// scheduler was down is not caught up.
	Progress *Progress

	claims *Claims // Claims with Keep set
	// instants are this run's claims of instants, by Unix second: the
	// first to ask claims it, the others wait for that.
	instMu   sync.Mutex
	instants map[int64]*instantClaim
	keys     keyCache
	mu       sync.Mutex
	running  []*live
	changed  chan struct{} // closed and replaced when running changes
}

// Outcome is how one fire ended: a run with its record, or a skip.
type Outcome struct {
	Fire
	// Started is when the run started (zero for a skip).
	Started time.Time
	// CaughtUp says the fire fell due before the scheduler began, while
	// no scheduler decided it, and the catch-up let it run late.
	CaughtUp bool
	// Records are the runs' records, one per experiment file.
	Records []*reports.Record
}

// Run schedules until ctx ends; then it cancels every live run (each
// aborts and reverts its faults), waits for them to end and returns
// context.Cause(ctx).
func (s *Scheduler) Run(ctx context.Context) error {
	plan, err := Compile(s.Schedule)
	if err != nil {
		return err
	}
	clk := clock.Or(s.Clock)
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	s.mu.Lock()
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.claims = nil
	if s.Claims != nil && s.Progress != nil {
		return errors.New("scheduler: Claims (leader election) and Progress (a single scheduler) are exclusive")
	}
	if s.Claims != nil {
		c := *s.Claims
		c.Keep = max(c.Keep, KeepClaims(plan))
		s.claims = &c
	}
	s.instMu.Lock()
	s.instants = map[int64]*instantClaim{}
	s.instMu.Unlock()

	runCtx, stopRuns := context.WithCancelCause(context.WithoutCancel(ctx))
	var (
		fires sync.WaitGroup
		// stopped runs once every fire was decided and every run ended.
		stopped = func() {}
	)
	defer func() {
		cause := context.Cause(ctx)
		if cause == nil || errors.Is(cause, context.Canceled) {
			cause = ErrStopped
		}
		stopRuns(cause)
		fires.Wait()
		stopped()
	}()

	// Read every experiment's targets once before the first fire, so that
	// a fire only checks the file is unchanged (the cache) rather than
	// load it while it is due.
	for _, pe := range plan.entries {
		for _, f := range s.files(pe.e) {
			s.keys.keys(f)
		}
	}
	start := clk.Now()
	q := newQueue(plan, start)
	for _, it := range q.items {
		s.Metrics.nextRun(plan.entries[it.i].e.Name, it.at)
	}
	if s.claims != nil {
		window := s.claims.Keep - ClaimMargin + ClaimMargin/4
		// Where the last leader got to, read once for every entry, and
		// before the loop claims anything: an instant this run claims is
		// not where another leader got to.
		newest, err := s.claims.Last()
		if err != nil {
			s.Log.Warn("not caught up", "err", err, "why", "the claims could not be read: nothing before now is decided by this replica")
		} else {
			resume := func(i int) (time.Time, error) { return s.claims.Resume(plan.entries[i].e.Name, newest, start) }
			fires.Go(func() { s.catchUp(ctx, runCtx, plan, start, window, resume, &fires) })
		}
	}
	if s.Progress != nil {
		// Read and saved once before the loop begins: a record that
		// cannot be kept stops the scheduler here, saying why, rather
		// than let a restart catch up what it already ran.
		resume, err := s.Progress.begin(plan, start)
		if err != nil {
			return err
		}
		stopSaving := make(chan struct{})
		var saver sync.WaitGroup
		saver.Go(func() { s.Progress.keep(stopSaving, clk.Now, s.Log) })
		// Once every fire was decided and noted (the catch-up too): the
		// last save says where this run ended.
		stopped = func() {
			close(stopSaving)
			saver.Wait()
			if err := s.Progress.save(clk.Now()); err != nil {
				s.Log.Warn("save progress", "err", err, "why", "the next start may catch up again what this one decided since its last save")
			}
		}
		window := KeepClaims(plan) - ClaimMargin + ClaimMargin/4
		fires.Go(func() {
			s.catchUp(ctx, runCtx, plan, start, window, func(i int) (time.Time, error) { return resume[i], nil }, &fires)
		})
	}
	var (
		nextPrune time.Time
		pruning   atomic.Bool
	)
	for {
		at := q.items[0].at
		if at.IsZero() {
			<-ctx.Done()
			return context.Cause(ctx)
		}
		if s.claims != nil {
			// The instant is claimed ahead, off its fires' path: they
			// find the claim made (claimInstant) rather than wait for
			// its sync, which on a busy disk can take tens of ms.
			if !waitUntil(ctx, clk, at.Add(-claimAhead)) {
				return context.Cause(ctx)
			}
			fires.Go(func() { s.claimInstant(at) })
		}
		t := clk.NewTimer(at.Sub(clk.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C():
		}
		now := clk.Now()
		// Every entry due by now fires, in time order; each is judged
		// against the time it was due, and a fire the loop reaches later
		// than its starting deadline (the process was stopped, the machine
		// slept) is skipped as missed rather than run late.
		var missed []Fire
		for len(q.items) > 0 && !q.items[0].at.IsZero() && !q.items[0].at.After(now) {
			it := q.items[0]
			fire := it.at
			it.at = plan.next(it.i, fire)
			heap.Fix(q, 0)
			s.Metrics.nextRun(plan.entries[it.i].e.Name, it.at)
			s.noteDecided(it.i, fire)
			if e := plan.entries[it.i].e; Missed(fire, now, e.StartingDeadline) {
				// Said by one goroutine per pass, not one per fire: after
				// a long stop an entry may have missed thousands of fires.
				missed = append(missed, missedFire(e, fire))
				continue
			}
			fires.Go(func() { s.fire(ctx, runCtx, plan, it.i, fire, false) })
		}
		if len(missed) > 0 {
			fires.Go(func() { s.skipMissed(missed) })
		}
		if s.claims != nil && !now.Before(nextPrune) && pruning.CompareAndSwap(false, true) {
			nextPrune = now.Add(pruneEvery)
			fires.Go(func() {
				defer pruning.Store(false)
				s.forgetInstants(now.Add(-s.claims.Keep))
				n, err := s.claims.Prune(now)
				if err != nil {
					s.Log.Warn("prune claims", "err", err)
				}
				s.Log.Debug("pruned claims", "removed", n, "keep", s.claims.Keep)
			})
		}
	}
}

// skipMissed claims and says the fires the loop reached past their
// deadline. A replica whose fence fell (woken after a long stop) says them
// in one line: they are the next leader's to decide, and there may be
// thousands.
func (s *Scheduler) skipMissed(fs []Fire) {
	for i, f := range fs {
		if s.claims != nil && s.claims.Leading != nil {
			if err := s.claims.Leading(); err != nil {
				s.Log.Info("skip", "fires", len(fs)-i, "from", f.At, "reason", SkipLeaseLost, "detail", err.Error())
				for _, g := range fs[i:] {
					s.Metrics.skipped(g.Entry, SkipLeaseLost)
				}
				return
			}
		}
		if s.own(f) {
			s.skipped(f)
		}
	}
}

// claimAhead is how long before an instant is due a leader claims it.
// A leader whose fence falls in that time has claimed the instant
// without deciding its fires yet: it skips them as lease-lost (own), and
// the next leader leaves them alone, as it would had the fence fallen
// just after the claim of an instant due then.
const claimAhead = time.Second

// waitUntil waits until the clock reaches at; false when ctx ended first.
func waitUntil(ctx context.Context, clk clock.Clock, at time.Time) bool {
	d := at.Sub(clk.Now())
	if d <= 0 {
		return true
	}
	t := clk.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C():
		return true
	}
}

// pruneEvery is how often a scheduler with claims prunes them.
const pruneEvery = ClaimMargin / 2

// maxCatchUp bounds the fires of one entry a catch-up decides one by one.
const maxCatchUp = 1000

func missedFire(e *experiments.ScheduleEntry, at time.Time) Fire {
	return Fire{Entry: e.Name, At: at, Skip: SkipMissed,
		Detail: fmt.Sprintf("due at %s, past its starting deadline of %s", at.Format(time.RFC3339), e.StartingDeadline)}
}

// catchUp decides the fires that fell due before start (when this
// scheduler began) but after their entry's record ends (resume: its
// newest claim with leader election, its progress record without): fires
// no scheduler decided, because none was leading or, without leader
// election, none was running. As a CronJob does, only the newest of them
// may still run, if it is within its entry's starting deadline; every
// other is skipped as missed. With claims each is claimed first, so each
// is decided once across replicas; with progress each is noted.
//
// It looks back at most window (the schedule's longest starting deadline
// plus ClaimMargin/4): an older fire could not run anyway, and claims are
// kept only a little longer (Claims). Older fires of a long gap are
// counted as missed in the metric and named in one log line, not decided
// one by one. An entry with no record at all (zero resume) is new to this
// state directory (a first start, a directory an older version wrote, an
// entry just added): nothing is caught up, and its record begins now.
func (s *Scheduler) catchUp(ctx, runCtx context.Context, plan *Plan, start time.Time, window time.Duration, resume func(i int) (time.Time, error), fires *sync.WaitGroup) {
	lookback := start.Add(-window)
	var (
		fresh []string
		gaps  int // entries with fires to catch up
	)
	defer func() {
		// One line, however many entries: a first start on a state
		// directory says why it caught nothing up.
		if len(fresh) > 0 {
			s.Log.Info("nothing to catch up", "entries", len(fresh), "first", fresh[0], "why", "new to this state directory: their record begins now")
		}
		// And one when it is done: every fire before start was decided
		// or handed on by then.
		s.Log.Info("caught up", "entries", len(plan.entries), "withGaps", gaps)
	}()
	for i, pe := range plan.entries {
		e := pe.e
		last, err := resume(i)
		if err != nil {
			s.Log.Warn("catch up", "entry", e.Name, "err", err)
			continue
		}
		if last.IsZero() {
			fresh = append(fresh, e.Name)
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		from := last
		if from.Before(lookback) {
			if n, more := plan.count(i, from, lookback, maxGone); n > 0 {
				s.Log.Warn("not caught up", "entry", e.Name, "after", from, "until", lookback, "fires", n, "more", more,
					"why", "older than the longest starting deadline")
				s.Metrics.skippedN(e.Name, SkipMissed, n)
			}
			from = lookback
		}
		gap, dropped := plan.between(i, from, start, maxCatchUp)
		if len(gap) == 0 {
			continue
		}
		gaps++
		s.Log.Info("catch up", "entry", e.Name, "after", last, "fires", len(gap)+dropped, "why", s.gap())
		if dropped > 0 {
			s.Log.Warn("not caught up", "entry", e.Name, "fires", dropped, "why", fmt.Sprintf("more than %d fires in the gap", maxCatchUp))
			s.Metrics.skippedN(e.Name, SkipMissed, dropped)
		}
		newest := gap[len(gap)-1]
		for _, at := range gap[:len(gap)-1] {
			if f := missedFire(e, at); s.own(f) {
				s.noteDecided(i, at)
				f.Detail = s.gap() + ": " + f.Detail
				if !Missed(at, start, e.StartingDeadline) {
					f.Detail = fmt.Sprintf("%s, and a later fire (%s) is the one caught up", s.gap(), newest.Format(time.RFC3339))
				}
				s.skipped(f)
			}
		}
		// The newest goes the way of any fire: claimed, judged (its
		// deadline against the clock now), run or skipped.
		s.noteDecided(i, newest)
		fires.Go(func() { s.fire(ctx, runCtx, plan, i, newest, true) })
	}
}

// noteDecided notes in the progress record, when there is one, that entry
// i's fire due at at was decided.
func (s *Scheduler) noteDecided(i int, at time.Time) {
	if s.Progress != nil {
		s.Progress.decidedFire(i, at)
	}
}

// gap says why fires of a catch-up were not decided when they fell due.
// A single scheduler has no leader to speak of: it was not running.
func (s *Scheduler) gap() string {
	if s.claims != nil {
		return "no replica was leading"
	}
	return "no scheduler was running on this state directory"
}

// maxGone bounds the counting of fires older than the catch-up looks at.
const maxGone = 100_000

// own says whether a fire is this replica's to run: always without
// claims; with claims, when this run claimed the fire's instant and its
// fence still stands. False (the skip said) when it is not. A fire of an
// instant this run claimed before its fence fell is skipped as
// lease-lost here: the claim covers it, so it is this replica's to
// decide, and the next leader leaves it alone.
func (s *Scheduler) own(f Fire) bool {
	if s.claims == nil {
		return true
	}
	c := s.claimInstant(f.At)
	switch {
	case errors.Is(c.err, ErrLeaseLost):
		f.Skip, f.Detail = SkipLeaseLost, c.err.Error()
	case c.err != nil:
		f.Skip, f.Detail = SkipClaimed, c.err.Error()
	case !c.ok:
		f.Skip, f.Detail = SkipClaimed, claimedBy(c.holder)
	default:
		if s.claims.Leading == nil {
			return true
		}
		err := s.claims.Leading()
		if err == nil {
			return true
		}
		f.Skip, f.Detail = SkipLeaseLost, err.Error()+" (after this replica claimed the fire's instant: no other decides it)"
	}
	s.skipped(f)
	return false
}

// instantClaim is how this run's claim of one instant came out, once done
// is closed: ok (claimed by this run), claimed by holder, or err.
type instantClaim struct {
	done   chan struct{}
	ok     bool
	holder string
	err    error
}

// claimInstant claims the instant at for this run, once: the first fire
// due at it makes the claim (the Leading check, one file, one sync) and
// every other fire of the instant, in any goroutine, waits for it and
// shares its outcome. So the claim covers all of the instant's fires, and
// a fire is decided here only if this run claimed its instant: another
// replica that claimed it decides every one of them, and none here. A
// claim that failed (the Lease lost, the directory not writable) skips
// every fire of the instant with that error, as the next leader cannot
// tell which of them were decided.
func (s *Scheduler) claimInstant(at time.Time) *instantClaim {
	k := at.Unix()
	s.instMu.Lock()
	c, found := s.instants[k]
	if !found {
		c = &instantClaim{done: make(chan struct{})}
		s.instants[k] = c
	}
	s.instMu.Unlock()
	if found {
		<-c.done
		return c
	}
	defer close(c.done)
	c.ok, c.err = s.claims.Claim(at, clock.Or(s.Clock).Now())
	if c.err == nil && !c.ok {
		c.holder = s.claims.holder(at)
	}
	return c
}

// forgetInstants drops this run's claims of instants before cutoff (older
// than the claims are kept): none of their fires can be claimed again
// (ErrClaimTooOld), so none will ask.
func (s *Scheduler) forgetInstants(cutoff time.Time) {
	s.instMu.Lock()
	defer s.instMu.Unlock()
	for k := range s.instants {
		if k < cutoff.Unix() {
			delete(s.instants, k)
		}
	}
}

// claimedBy says which replica decided a fire this one found claimed.
func claimedBy(who string) string {
	if who != "" {
		return fmt.Sprintf("another replica (%s) claimed this fire's instant", who)
	}
	return "another replica claimed this fire's instant"
}

// fire handles one fire of entry i due at at: judged, then checked for
// incidents, then given to the concurrency policy, then run. caughtUp
// says the catch-up hands it on: it fell due before the scheduler began.
func (s *Scheduler) fire(ctx, runCtx context.Context, plan *Plan, i int, at time.Time, caughtUp bool) {
	e := plan.entries[i].e
	clk := clock.Or(s.Clock)
	if !s.own(Fire{Entry: e.Name, At: at}) {
		return
	}
	freezes, ferr := s.freezeFile()
	f := plan.judge(i, at, freezes)
	switch {
	case f.Skip != "":
	case ferr != nil:
		f.Skip, f.Detail = SkipFreezeUnknown, ferr.Error()
	case Missed(at, clk.Now(), e.StartingDeadline):
		f = missedFire(e, at)
		if caughtUp {
			f.Detail = s.gap() + ": " + f.Detail
		}
	}
	if f.Skip == "" && len(e.Alerts) > 0 {
		f.Skip, f.Detail = s.incident(ctx, e)
	}
	if f.Skip != "" {
		s.skipped(f)
		return
	}
	files := s.files(e)
	keys := conflictKeys(files, &s.keys)
	l, skip := s.admit(ctx, e, keys, at)
	if skip != "" {
		f.Skip, f.Detail = skip, "a conflicting run was live"
		if skip == SkipMissed {
			f.Detail = fmt.Sprintf("waited for a conflicting run past the starting deadline of %s", e.StartingDeadline)
		}
		if skip == SkipStopping {
			f.Detail = "the scheduler stopped first"
		}
		s.skipped(f)
		return
	}
	ctxRun, cancel := context.WithCancelCause(runCtx)
	l.cancel = cancel
	o := Outcome{Fire: f, Started: clk.Now(), CaughtUp: caughtUp}
	if caughtUp {
		s.Metrics.caughtUp(e.Name)
		s.Log.Info("run", "entry", e.Name, "due", at, "files", len(files), "caughtUp", true, "late", o.Started.Sub(at).Round(time.Millisecond))
	} else {
		s.Log.Info("run", "entry", e.Name, "due", at, "files", len(files))
	}
	for _, file := range files {
		if ctxRun.Err() != nil {
			break // replaced or stopping: the rest of the entry's files do not start
		}
		if s.claims != nil && s.claims.Leading != nil {
			// The fence, not only the context: the watcher that stops
			// the scheduler when it falls may not have run yet.
			if err := s.claims.Leading(); err != nil {
				s.Log.Info("not starting the entry's next file", "entry", e.Name, "file", file, "why", err)
				break
			}
		}
		dir := ""
		if s.ReportDir != "" {
			dir = filepath.Join(s.ReportDir, e.Name, at.UTC().Format("20060102T150405Z")+"-"+strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
		}
		rec := s.RunFile(ctxRun, file, dir)
		o.Records = append(o.Records, rec)
		s.Metrics.ran(e.Name, rec)
		s.Log.Info("ran", "entry", e.Name, "file", file, "verdict", rec.Verdict, "cause", rec.Cause, "reportDir", dir)
	}
	cancel(nil)
	s.release(l)
	if s.Fired != nil {
		s.Fired(o)
	}
}

// admit registers the fire as live once the policy lets it run; it waits
// as the policy says, up to the starting deadline.
func (s *Scheduler) admit(ctx context.Context, e *experiments.ScheduleEntry, keys []string, at time.Time) (*live, SkipReason) {
	clk := clock.Or(s.Clock)
	for {
		s.mu.Lock()
		d := decide(e.ConcurrencyPolicy, e.Name, keys, s.running)
		if d.act == actRun {
			l := &live{entry: e.Name, keys: keys, done: make(chan struct{})}
			s.running = append(s.running, l)
			s.changedLocked()
			s.mu.Unlock()
			return l, ""
		}
		changed := s.changed
		s.mu.Unlock()
		if d.act == actSkip {
			return nil, SkipConcurrency
		}
		for _, c := range d.cancel {
			c.cancel(fmt.Errorf("%w: replaced by the run due at %s", ErrReplaced, at.Format(time.RFC3339)))
		}
		left := e.StartingDeadline - clk.Now().Sub(at)
		if left <= 0 {
			return nil, SkipMissed
		}
		t := clk.NewTimer(left)
		select {
		case <-changed:
			t.Stop()
		case <-t.C():
			return nil, SkipMissed
		case <-ctx.Done():
			t.Stop()
			return nil, SkipStopping
		}
	}
}

// ErrReplaced is the cause a run replaced by the next fire of its entry is
// aborted with.
var ErrReplaced = errors.New("replaced by the next run of its entry (concurrencyPolicy: Replace)")

func (s *Scheduler) release(l *live) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.running {
		if x == l {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	close(l.done)
	s.changedLocked()
}

func (s *Scheduler) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Live is the number of runs in progress.
func (s *Scheduler) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

func (s *Scheduler) files(e *experiments.ScheduleEntry) []string {
	var out []string
	for _, pat := range e.Experiments {
		fs, _ := experiments.ExpandExperiments(s.Schedule.File, pat)
		out = append(out, fs...)
	}
	return out
}

// freezeFile reads the freezes the release process wrote. A missing file
// is no freeze; one that cannot be read or parsed is an error, and the run
// is skipped: a freeze is never guessed away.
func (s *Scheduler) freezeFile() ([]experiments.Period, error) {
	path := s.Schedule.FreezeFilePath()
	if path == "" {
		return nil, nil
	}
	// Its dates are in the schedule's zone, the zone of an entry without
	// one of its own.
	return ReadFreezeFile(path, s.Schedule.Location(&experiments.ScheduleEntry{}))
}

// ReadFreezeFile reads a freeze file; a missing one is no freeze.
func ReadFreezeFile(path string, loc *time.Location) ([]experiments.Period, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("freeze file: %w", err)
	}
	ps, err := experiments.ParseFreezeList(path, data, loc)
	if err != nil {
		return nil, fmt.Errorf("freeze file: %w", err)
	}
	return ps, nil
}

func (s *Scheduler) incident(ctx context.Context, e *experiments.ScheduleEntry) (SkipReason, string) {
	if s.Alerts == nil {
		return SkipAlertsUnknown, "no Alertmanager to ask"
	}
	names, err := s.Alerts.Firing(ctx, e.Alerts)
	if err != nil {
		return SkipAlertsUnknown, err.Error()
	}
	if len(names) > 0 {
		return SkipIncident, "firing: " + strings.Join(names, ", ")
	}
	return "", ""
}

// skipped logs, counts and tells a skipped fire. Skips that the
// environment decided (an incident, a freeze, an Alertmanager that did not
// answer) also get a refused record in the report folder, so the owners
// see why their experiment did not run.
func (s *Scheduler) skipped(f Fire) {
	s.Log.Info("skip", "entry", f.Entry, "due", f.At, "reason", f.Skip, "detail", f.Detail)
	s.Metrics.skipped(f.Entry, f.Skip)
	o := Outcome{Fire: f}
	switch f.Skip {
	case SkipIncident, SkipAlertsUnknown, SkipFreeze, SkipFreezeUnknown:
		if s.ReportDir != "" {
			rec := &reports.Record{
				Experiment: reports.Experiment{Name: f.Entry, File: s.Schedule.File},
				StartedAt:  f.At, EndedAt: f.At, Verdict: reports.Refused, Cause: f.Skip,
				Reason: "the scheduled run was skipped before anything was touched: " + f.Detail,
			}
			dir := filepath.Join(s.ReportDir, f.Entry, f.At.UTC().Format("20060102T150405Z")+"-skipped")
			if _, err := reports.WriteAll(rec, dir); err != nil {
				s.Log.Warn("write skip record", "entry", f.Entry, "err", err)
			}
			o.Records = []*reports.Record{rec}
		}
	}
	if s.Fired != nil {
		s.Fired(o)
	}
}

// queue is the entries ordered by their next fire; an entry that never
// fires again (zero time) sorts last.
type queue struct{ items []*queued }

type queued struct {
	i  int
	at time.Time
}

func newQueue(p *Plan, now time.Time) *queue {
	q := &queue{}
	for i := range p.entries {
		q.items = append(q.items, &queued{i: i, at: p.next(i, now)})
	}
	heap.Init(q)
	return q
}

func (q *queue) Len() int { return len(q.items) }
func (q *queue) Less(a, b int) bool {
	x, y := q.items[a], q.items[b]
	if x.at.IsZero() != y.at.IsZero() {
		return y.at.IsZero()
	}
	if !x.at.Equal(y.at) {
		return x.at.Before(y.at)
	}
	return x.i < y.i
}
func (q *queue) Swap(a, b int) { q.items[a], q.items[b] = q.items[b], q.items[a] }
func (q *queue) Push(x any)    { q.items = append(q.items, x.(*queued)) }
func (q *queue) Pop() any {
	it := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return it
}
