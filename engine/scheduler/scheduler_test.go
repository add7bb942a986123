package scheduler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeSchedule writes an experiment file and a schedule naming it.
func writeSchedule(t *testing.T, body string) *experiments.Schedule {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "exp.yaml"), []byte("apiVersion: chaos/v1\nkind: Experiment\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("apiVersion: chaos/v1\nkind: Experiment\n"), 0o644))
	path := filepath.Join(dir, "schedule.yaml")
	text := "apiVersion: chaos/v1\nkind: Schedule\nmetadata: {name: test}\nspec:\n" + body
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	s, err := experiments.LoadSchedule(path)
	require.NoError(t, err, "the test's schedule is valid:\n%s", text)
	return s
}

// TestUpcomingCronZonesWindowsFreezes: the plan is pure; cron in the
// entry's zone, windows in that zone, freezes by whole days, and a reason
// for every skip.
func TestUpcomingCronZonesWindowsFreezes(t *testing.T) {
	s := writeSchedule(t, `  timeZone: Europe/Berlin
  windows: [{days: [mon, tue, wed, thu, fri], from: "10:00", to: "16:00"}]
  freezes: [{from: 2026-03-10, to: 2026-03-10, reason: release 4.2}]
  entries:
    - {name: morning, experiments: [exp.yaml], cron: "0 30 10 * * *"}
    - {name: evening, experiments: [exp.yaml], cron: "0 0 18 * * *"}
`)
	p, err := Compile(s)
	require.NoError(t, err)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	// Friday 2026-03-06, 09:00 Berlin.
	start := time.Date(2026, 3, 6, 9, 0, 0, 0, berlin)
	fires := p.Upcoming(start, 10, nil)
	require.Len(t, fires, 10)
	type got struct {
		entry string
		at    string
		skip  SkipReason
	}
	var g []got
	for _, f := range fires {
		g = append(g, got{f.Entry, f.At.In(berlin).Format("Mon 01-02 15:04"), f.Skip})
	}
	require.Equal(t, []got{
		{"morning", "Fri 03-06 10:30", ""},
		{"evening", "Fri 03-06 18:00", SkipWindow},
		{"morning", "Sat 03-07 10:30", SkipWindow},
		{"evening", "Sat 03-07 18:00", SkipWindow},
		{"morning", "Sun 03-08 10:30", SkipWindow},
		{"evening", "Sun 03-08 18:00", SkipWindow},
		{"morning", "Mon 03-09 10:30", ""},
		{"evening", "Mon 03-09 18:00", SkipWindow},
		{"morning", "Tue 03-10 10:30", SkipFreeze},
		{"evening", "Tue 03-10 18:00", SkipFreeze},
	}, g, "the next fires, in the entries' zone, with the window and freeze skips")
	require.Contains(t, fires[8].Detail, "release 4.2", "a freeze skip says which freeze")
	require.Contains(t, fires[1].Detail, "mon,tue,wed,thu,fri 10:00-16:00", "a window skip says the windows")

	// A fire exactly at a window's end is outside it: windows are [from, to).
	w := experiments.DayWindow{From: 10 * 60, To: 16 * 60}
	require.True(t, w.Contains(time.Date(2026, 3, 6, 15, 59, 59, 0, berlin)))
	require.False(t, w.Contains(time.Date(2026, 3, 6, 16, 0, 0, 0, berlin)))

	// Across the switch to summer time (2026-03-29 02:00 → 03:00 in
	// Berlin) the entry still fires at 10:30 local time.
	spring := p.Upcoming(time.Date(2026, 3, 28, 11, 0, 0, 0, berlin), 4, nil)
	require.Equal(t, "2026-03-29 10:30 +0200", spring[1].At.In(berlin).Format("2006-01-02 15:04 -0700"))

	// A freeze from the freeze file counts like one in the schedule.
	extra := []experiments.Period{{From: start, To: start.Add(2 * time.Hour), Reason: "incident review"}}
	require.Equal(t, SkipFreeze, p.Upcoming(start, 1, extra)[0].Skip)
}

// TestMissed is the starting deadline.
func TestMissed(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.False(t, Missed(at, at.Add(time.Minute), time.Minute), "exactly at the deadline still starts")
	require.True(t, Missed(at, at.Add(time.Minute+time.Nanosecond), time.Minute))
}

// TestDecidePolicies: the concurrency policies, pure.
func TestDecidePolicies(t *testing.T) {
	own := &live{entry: "a", keys: []string{"endpoint:x"}}
	other := &live{entry: "b", keys: []string{"endpoint:x"}}
	apart := &live{entry: "c", keys: []string{"endpoint:y"}}
	keys := []string{"endpoint:x"}

	require.Equal(t, actRun, decide(experiments.ConcurrencyForbid, "a", keys, []*live{apart}).act, "no conflict: run")
	d := decide(experiments.ConcurrencyForbid, "a", keys, []*live{other})
	require.Equal(t, actSkip, d.act, "Forbid skips a fire while a run on the same target is live")
	d = decide(experiments.ConcurrencyAllow, "a", keys, []*live{own, apart})
	require.Equal(t, actWait, d.act, "Allow waits: never two runs on one target")
	require.Equal(t, []*live{own}, d.waitFor)
	d = decide(experiments.ConcurrencyReplace, "a", keys, []*live{own, other})
	require.Equal(t, actWait, d.act)
	require.Equal(t, []*live{own}, d.cancel, "Replace stops only the entry's own run")
	require.Equal(t, []*live{own, other}, d.waitFor, "and waits for another entry's run on the target")
}

// harness runs a Scheduler on a fake clock with a RunFile that blocks
// until the test releases it.
type harness struct {
	clk     *clock.Fake
	started chan string
	release chan struct{}
	fired   chan Outcome
	ended   chan error // a run's cause, when its context ended it
	stop    context.CancelFunc
	done    chan error
}

func startHarness(t *testing.T, s *experiments.Schedule) *harness {
	t.Helper()
	return startHarnessAt(t, s, time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC))
}

func startHarnessAt(t *testing.T, s *experiments.Schedule, start time.Time) *harness {
	t.Helper()
	h := &harness{
		clk:     clock.NewFake(start),
		started: make(chan string, 16),
		release: make(chan struct{}),
		fired:   make(chan Outcome, 64),
		ended:   make(chan error, 16),
		done:    make(chan error, 1),
	}
	sch := &Scheduler{
		Schedule: s,
		Clock:    h.clk,
		RunFile: func(ctx context.Context, path, dir string) *reports.Record {
			h.started <- filepath.Base(path)
			select {
			case <-h.release:
				return &reports.Record{Verdict: reports.Passed}
			case <-ctx.Done():
				h.ended <- context.Cause(ctx)
				return &reports.Record{Verdict: reports.Aborted}
			}
		},
		Fired: func(o Outcome) { h.fired <- o },
	}
	ctx, cancel := context.WithCancel(t.Context())
	h.stop = cancel
	go func() { h.done <- sch.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
	})
	return h
}

// tick waits until the scheduler waits for time, then moves it by d.
func (h *harness) tick(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.clk.BlockUntilWithin(ctx, d), "the scheduler arms a timer due within %s", d)
	h.clk.Advance(d)
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestForbidSkipsWhileLive: a fire while the entry's run is live is skipped
// (concurrency); once the run ends, the next fire runs.
func TestForbidSkipsWhileLive(t *testing.T) {
	s := writeSchedule(t, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", concurrencyPolicy: Forbid}
`)
	h := startHarness(t, s)
	h.tick(t, 10*time.Second)
	require.Equal(t, "exp.yaml", recv(t, h.started, "the first run"))
	h.tick(t, 10*time.Second)
	o := recv(t, h.fired, "the second fire")
	require.Equal(t, SkipConcurrency, o.Skip, "Forbid skips while the first run is live")
	h.release <- struct{}{}
	o = recv(t, h.fired, "the first run's outcome")
	require.Empty(t, o.Skip)
	require.Equal(t, reports.Passed, o.Records[0].Verdict)
	h.tick(t, 10*time.Second)
	require.Equal(t, "exp.yaml", recv(t, h.started, "the third fire runs"))
	h.release <- struct{}{}
	recv(t, h.fired, "the third run's outcome")
}

// TestAllowWaitsForTheTarget: two entries on one target; the second, due
// while the first runs, waits (Allow) and starts when the first ends; a
// third fire that cannot start within its deadline is missed.
func TestAllowWaitsForTheTarget(t *testing.T) {
	s := writeSchedule(t, `  entries:
    - {name: first, experiments: [exp.yaml], cron: "0 * * * * *"}
    - {name: second, experiments: [exp.yaml], cron: "5 * * * * *", concurrencyPolicy: Allow, startingDeadline: 30s}
`)
	h := startHarnessAt(t, s, time.Date(2026, 3, 6, 10, 0, 30, 0, time.UTC))
	h.tick(t, 30*time.Second) // 10:01:00: first
	recv(t, h.started, "the first entry's run")
	h.tick(t, 5*time.Second) // 10:01:05: second is due and waits
	select {
	case <-h.started:
		t.Fatal("the second entry started while the first ran on the same target")
	case o := <-h.fired:
		t.Fatalf("the second entry did not wait: %+v", o)
	default:
	}
	// Its deadline timer is armed beside the loop's: it waits, it does
	// not poll.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.clk.BlockUntil(ctx, 2), "the waiting fire arms its deadline")
	h.clk.Advance(10 * time.Second)
	h.release <- struct{}{}
	recv(t, h.fired, "the first run's outcome")
	recv(t, h.started, "the second entry runs once the first has ended")
	h.release <- struct{}{}
	o := recv(t, h.fired, "the second run's outcome")
	require.Equal(t, "second", o.Entry)
	require.Equal(t, time.Date(2026, 3, 6, 10, 1, 15, 0, time.UTC), o.Started, "it started when the first ended, not at its own time")

	// 10:02:00 first runs again and is held past second's deadline.
	h.tick(t, 45*time.Second)
	recv(t, h.started, "the first entry's second run")
	h.tick(t, 5*time.Second) // 10:02:05 second due, waits
	h.tick(t, 30*time.Second)
	o = recv(t, h.fired, "the second entry gives up")
	require.Equal(t, SkipMissed, o.Skip, "a run that cannot start within its deadline is missed")
	h.release <- struct{}{}
	recv(t, h.fired, "the first run's outcome")
}

// TestReplaceAbortsTheOwnRun: Replace cancels the entry's live run with
// ErrReplaced (the engine aborts and reverts it) and starts the new one.
func TestReplaceAbortsTheOwnRun(t *testing.T) {
	s := writeSchedule(t, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", concurrencyPolicy: Replace}
`)
	h := startHarness(t, s)
	h.tick(t, 10*time.Second)
	recv(t, h.started, "the first run")
	h.tick(t, 10*time.Second)
	require.ErrorIs(t, recv(t, h.ended, "the first run is cancelled"), ErrReplaced)
	o := recv(t, h.fired, "the first run's outcome")
	require.Equal(t, reports.Aborted, o.Records[0].Verdict)
	recv(t, h.started, "the replacing run")
	h.release <- struct{}{}
	recv(t, h.fired, "the replacing run's outcome")
}

// TestStopCancelsLiveRuns: stopping the scheduler cancels what is live
// and waits for it before Run returns.
func TestStopCancelsLiveRuns(t *testing.T) {
	s := writeSchedule(t, `  entries:
    - {name: a, experiments: [exp.yaml, other.yaml], cron: "*/10 * * * * *"}
`)
	h := startHarness(t, s)
	h.tick(t, 10*time.Second)
	require.Equal(t, "exp.yaml", recv(t, h.started, "the run"))
	h.stop()
	require.ErrorIs(t, recv(t, h.ended, "the live run is cancelled"), ErrStopped)
	require.ErrorIs(t, recv(t, h.done, "Run returns"), context.Canceled)
	o := recv(t, h.fired, "the run's outcome")
	require.Len(t, o.Records, 1, "the entry's next file never starts once stopping")
	h.done <- nil // for the cleanup
}

// TestFreezeFileUnreadableSkips: a freeze file that cannot be parsed skips
// the run (no guess); a missing one is no freeze.
func TestFreezeFileUnreadableSkips(t *testing.T) {
	s := writeSchedule(t, `  freezeFile: freeze.yaml
  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *"}
`)
	freeze := filepath.Join(filepath.Dir(s.File), "freeze.yaml")
	h := startHarness(t, s)
	h.tick(t, 10*time.Second)
	recv(t, h.started, "no freeze file: the run starts")
	h.release <- struct{}{}
	recv(t, h.fired, "its outcome")

	require.NoError(t, os.WriteFile(freeze, []byte("freezes: [{from: soon}]\n"), 0o644))
	h.tick(t, 10*time.Second)
	o := recv(t, h.fired, "the fire with a broken freeze file")
	require.Equal(t, SkipFreezeUnknown, o.Skip)
	require.Contains(t, o.Detail, "freeze.yaml:1:", "the skip says where the freeze file is wrong")

	require.NoError(t, os.WriteFile(freeze, []byte("freezes: [{from: 2026-03-06, to: 2026-03-06, reason: release}]\n"), 0o644))
	h.tick(t, 10*time.Second)
	o = recv(t, h.fired, "the fire in the freeze")
	require.Equal(t, SkipFreeze, o.Skip)
}

// TestAlertsUnknownSkips: an entry with alerts and no answer is skipped.
func TestAlertsUnknownSkips(t *testing.T) {
	s := writeSchedule(t, `  alertmanager: {url: "http://127.0.0.1:1"}
  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", alerts: {service: shop}}
`)
	h := startHarness(t, s)
	h.tick(t, 10*time.Second)
	o := recv(t, h.fired, "the fire")
	require.Equal(t, SkipAlertsUnknown, o.Skip, "no Alertmanager answer: skipped, never guessed")
	require.False(t, errors.Is(nil, ErrStopped))
}
