package scheduler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

var t0 = time.Date(2026, 3, 6, 10, 0, 0, 0, time.UTC)

// claimed lists the instants claimed in a schedule's folder dir, with who
// claimed each (the entry folders, with their since files, are not
// claims).
func claimed(t *testing.T, dir string) map[time.Time]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	out := map[time.Time]string{}
	for _, de := range des {
		if de.IsDir() || strings.HasPrefix(de.Name(), ".new-") {
			continue // an entry folder, or a claim or since file being written
		}
		at, err := time.Parse(claimLayout, de.Name())
		require.NoError(t, err, "only claims and entry folders in %s", dir)
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		out[at] = strings.TrimSpace(string(b))
	}
	return out
}

// oldClaim writes a claim of the older per-entry layout,
// STATE/fires/SCHEDULE/ENTRY/TIME, as the versions before per-instant
// claims did.
func oldClaim(t *testing.T, dir, entry string, at time.Time, who string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, entry), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, entry, at.UTC().Format(claimLayout)), []byte(who+"\n"), 0o600))
}

// began writes entry's since file at at, as a leader that began
// scheduling it then did.
func began(t *testing.T, dir, entry string, at time.Time) {
	t.Helper()
	require.NoError(t, (&Claims{Dir: dir, Identity: "old_0"}).begin(entry, at))
}

// TestClaimsPruneKeepsExactlyOnce: Prune removes the claimed instants
// older than Keep but the newest, and the older layout's per-entry claims
// older than Keep but each entry's newest; an instant that old cannot be
// claimed again (ErrClaimTooOld), even by a replica whose clock is up to
// ClaimMargin/2 behind, so a pruned claim never lets a fire run twice.
func TestClaimsPruneKeepsExactlyOnce(t *testing.T) {
	dir := t.TempDir()
	c := &Claims{Dir: dir, Identity: "one_1", Keep: time.Minute + ClaimMargin}
	// An instant every 10 minutes for two hours; entry b was claimed in
	// the older layout three times, long ago, and c once.
	for at := t0; !at.After(t0.Add(2 * time.Hour)); at = at.Add(10 * time.Minute) {
		ok, err := c.Claim(at, at)
		require.NoError(t, err)
		require.True(t, ok)
	}
	for i := range 3 {
		oldClaim(t, dir, "b", t0.Add(time.Duration(i)*time.Minute), "old_0")
	}
	oldClaim(t, dir, "c", t0, "old_0")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README"), nil, 0o600), "a stray file")
	began(t, dir, "b", t0)

	now := t0.Add(2 * time.Hour)
	n, err := c.Prune(now)
	require.NoError(t, err)
	// Kept: instants at or after now-11m (12:00, 11:50), b's newest and
	// c's only one.
	require.Equal(t, 13-2+2, n, "every claim older than Keep is removed")
	last, err := c.Last()
	require.NoError(t, err)
	require.Equal(t, now, last, "the newest claim stays")
	kept, err := c.list(dir)
	require.NoError(t, err)
	require.Equal(t, []time.Time{now.Add(-10 * time.Minute), now}, kept)
	for _, e := range []string{"b", "c"} {
		old, err := c.list(filepath.Join(dir, e))
		require.NoError(t, err)
		require.Len(t, old, 1, "an entry's newest old claim stays, however old: it is where a leader resumes")
	}
	for _, f := range []string{"README", filepath.Join("b", sinceFile)} {
		_, err = os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, "Prune removes claims only")
	}
	n, err = c.Prune(now)
	require.NoError(t, err)
	require.Zero(t, n, "pruning again removes nothing")

	// A pruned instant is past the claim horizon: refused, never re-run.
	ok, err := c.Claim(t0, now)
	require.ErrorIs(t, err, ErrClaimTooOld)
	require.False(t, ok)
	// A replica whose clock is ClaimMargin/2 behind the pruner's cannot
	// claim what the pruner removed either.
	behind := now.Add(-ClaimMargin / 2)
	for at := t0; at.Before(now.Add(-c.Keep)); at = at.Add(10 * time.Minute) {
		_, err = c.Claim(at, behind)
		require.ErrorIs(t, err, ErrClaimTooOld, "instant %s was pruned", at)
	}
	// An instant within the longest starting deadline is still claimable.
	ok, err = c.Claim(now.Add(-time.Minute+time.Second), now)
	require.NoError(t, err)
	require.True(t, ok)
}

// TestClaimRefusedWithoutTheLease: a replica whose fence fell claims
// nothing.
func TestClaimRefusedWithoutTheLease(t *testing.T) {
	dir := t.TempDir()
	c := &Claims{Dir: dir, Identity: "one_1", Keep: ClaimMargin + time.Minute,
		Leading: func() error { return fmt.Errorf("%w: the Lease names %q", ErrLeaseLost, "two_2") }}
	ok, err := c.Claim(t0, t0)
	require.ErrorIs(t, err, ErrLeaseLost)
	require.False(t, ok)
	require.Empty(t, claimed(t, dir), "no claim was written")
}

// replica is one scheduler of a replicated schedule on a shared fake clock
// and claims directory; its runs end at once, passed.
type replica struct {
	id      string
	sch     *Scheduler
	fired   chan Outcome
	stop    context.CancelFunc
	done    chan error
	metrics *Metrics
}

func startReplica(t *testing.T, clk *clock.Fake, claims, id string, leading Leading) *replica {
	t.Helper()
	return startReplicaOf(t, clk, claims, id, leading, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
`)
}

func startReplicaOf(t *testing.T, clk *clock.Fake, claims, id string, leading Leading, entries string) *replica {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	require.NoError(t, err)
	r := &replica{id: id, fired: make(chan Outcome, 64), done: make(chan error, 1), metrics: m}
	r.sch = &Scheduler{
		Schedule: writeSchedule(t, entries), Clock: clk, Metrics: m,
		RunFile: func(context.Context, string, string) *reports.Record {
			return &reports.Record{Verdict: reports.Passed}
		},
		Claims: &Claims{Dir: claims, Identity: id, Leading: leading},
		Fired:  func(o Outcome) { r.fired <- o },
	}
	ctx, cancel := context.WithCancel(t.Context())
	r.stop = func() {
		cancel()
		<-r.done
		r.done <- nil
	}
	go func() { r.done <- r.sch.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// outcomes receives n outcomes, keyed by due time.
func (r *replica) outcomes(t *testing.T, n int) map[time.Time]Outcome {
	t.Helper()
	out := map[time.Time]Outcome{}
	for range n {
		o := recv(t, r.fired, r.id+"'s outcome")
		_, dup := out[o.At]
		require.False(t, dup, "%s decided the fire due %s twice", r.id, o.At)
		out[o.At] = o
	}
	return out
}

func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

func waitTimers(t *testing.T, clk *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, clk.BlockUntil(ctx, n))
}

// leading is the fence of a replica that holds the Lease throughout.
func leading() error { return nil }

// TestNewLeaderCatchesUpTheGap: replica one leads and runs the 10:00:10
// fire, then stops; nobody leads through 10:00:20, :30 and :40; replica
// two leads at 10:00:47. As a CronJob would, it runs the newest fire of
// the gap (:40, 7s late, within its 20s deadline) and skips the older
// ones as missed (:20 is past its deadline; :30 is not, but a later fire
// is the one caught up). Every gap fire is claimed by two, once; then it
// schedules on from 10:00:50.
func TestNewLeaderCatchesUpTheGap(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	one := startReplica(t, clk, claims, "one_1", leading)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	o := recv(t, one.fired, "one's run")
	require.Empty(t, o.Skip)
	require.Len(t, o.Records, 1)
	one.stop()

	clk.Advance(37 * time.Second) // 10:00:47
	two := startReplica(t, clk, claims, "two_2", leading)
	got := two.outcomes(t, 3)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	require.Equal(t, SkipMissed, got[at(20)].Skip, "past its deadline: missed")
	require.Contains(t, got[at(20)].Detail, "no replica was leading")
	require.Equal(t, SkipMissed, got[at(30)].Skip, "only the newest fire of a gap is caught up")
	require.Empty(t, got[at(40)].Skip, "the newest fire of the gap, within its deadline, runs")
	require.True(t, got[at(40)].CaughtUp)
	require.Len(t, got[at(40)].Records, 1)
	require.Equal(t, at(47), got[at(40)].Started, "it ran when the new leader began")
	require.Equal(t, map[time.Time]string{at(10): "one_1", at(20): "two_2", at(30): "two_2", at(40): "two_2"},
		claimed(t, claims), "every instant is claimed once, by the replica that decided its fires")
	require.InDelta(t, 2, count(t, two.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0, "the missed fires are counted")

	waitTimers(t, clk, 1)
	clk.Advance(3 * time.Second) // 10:00:50
	o = recv(t, two.fired, "the next fire")
	require.Equal(t, at(50), o.At)
	require.Empty(t, o.Skip)
}

// TestCatchUpOnceAcrossReplicas: two replicas start on one claims
// directory at once (they should not, but claims are the last word):
// every gap fire is decided by exactly one of them; the other skips it as
// claimed. A third that starts later catches up nothing.
func TestCatchUpOnceAcrossReplicas(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	began(t, claims, "a", t0)
	ok, err := ClaimInstant(claims, t0.Add(10*time.Second), "old_0")
	require.NoError(t, err)
	require.True(t, ok)
	clk.Advance(47 * time.Second)
	// Both read the newest claim before either claims anything: their
	// first claim waits for the other's.
	var arrived atomic.Int32
	both := make(chan struct{})
	leading := func() error {
		if arrived.Add(1) == 2 {
			close(both)
		}
		<-both
		return nil
	}
	two := startReplica(t, clk, claims, "two_2", leading)
	three := startReplica(t, clk, claims, "three_3", leading)
	a, b := two.outcomes(t, 3), three.outcomes(t, 3)
	runs, missed := 0, 0
	for at, x := range a {
		y := b[at]
		require.NotNil(t, y.Entry, "both replicas reached the fire due %s", at)
		if x.Skip == SkipClaimed {
			x, y = y, x
		}
		require.Equal(t, SkipClaimed, y.Skip, "the fire due %s is decided by one replica only (%+v, %+v)", at, x, y)
		require.Empty(t, y.Records)
		switch x.Skip {
		case "":
			runs++
			require.Equal(t, t0.Add(40*time.Second), at, "only the newest gap fire runs")
		case SkipMissed:
			missed++
		default:
			t.Fatalf("the fire due %s: %+v", at, x)
		}
	}
	require.Equal(t, 1, runs)
	require.Equal(t, 2, missed)
	two.stop()
	three.stop()

	four := startReplica(t, clk, claims, "four_4", nil)
	waitTimers(t, clk, 1)
	select {
	case o := <-four.fired:
		t.Fatalf("a replica that starts after the catch-up decides the gap again: %+v", o)
	default:
	}
	require.Len(t, claimed(t, claims), 4)
}

// TestCatchUpLongGap: after a gap longer than the longest starting
// deadline, the fires older than it are counted as missed, not claimed
// one by one; the fires within it are caught up. An entry never claimed
// before is not caught up at all.
func TestCatchUpLongGap(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	began(t, claims, "a", t0)
	ok, err := ClaimInstant(claims, t0, "old_0")
	require.NoError(t, err)
	require.True(t, ok)
	clk.Advance(time.Hour + 5*time.Second) // 11:00:05
	r := startReplicaOf(t, clk, claims, "two_2", nil, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
    - {name: fresh, experiments: [other.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
`)
	// Within the lookback (10:57:15, 11:00:05] (the 20s deadline and
	// ClaimMargin/4): 10:57:20 ... 10:59:50 missed, 11:00:00 runs.
	got := r.outcomes(t, 17)
	for at, o := range got {
		require.Equal(t, "a", o.Entry, "an entry with no record is not caught up")
		if at.Equal(t0.Add(time.Hour)) {
			require.Empty(t, o.Skip, "the newest gap fire runs")
			continue
		}
		require.Equal(t, SkipMissed, o.Skip, "the fire due %s", at)
	}
	// 10:00:10 ... 10:57:10 are older than the lookback: 343 fires,
	// counted, not claimed.
	require.InDelta(t, 343+16, count(t, r.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0)
	require.Len(t, claimed(t, claims), 1+17, "only the instants within the lookback were claimed")
	// The catch-up goes on to the next entry after a's fires: poll.
	var since time.Time
	require.Eventually(t, func() bool {
		since, err = (&Claims{Dir: claims}).since("fresh")
		return err == nil && !since.IsZero()
	}, 10*time.Second, 10*time.Millisecond, "the new entry's record begins")
	require.Equal(t, t0.Add(time.Hour+5*time.Second), since, "its record begins when this scheduler began")
	select {
	case o := <-r.fired:
		t.Fatalf("an entry with no record is not caught up: %+v", o)
	default:
	}
}

// TestLostLeaseStartsNothing: a replica whose fence fell claims and runs
// nothing; its fires are skipped as lease-lost and left unclaimed for the
// next leader.
func TestLostLeaseStartsNothing(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	lost := fmt.Errorf("%w: not renewed", ErrLeaseLost)
	r := startReplica(t, clk, claims, "one_1", func() error { return lost })
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	o := recv(t, r.fired, "the fire")
	require.Equal(t, SkipLeaseLost, o.Skip)
	require.Empty(t, o.Records, "nothing ran")
	require.Empty(t, claimed(t, claims), "the fire is left for the next leader")

	// Woken after ten minutes: the 57 fires past their deadline are said
	// in one line and counted; the 3 within it are skipped one by one.
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Minute)
	for range 3 {
		require.Equal(t, SkipLeaseLost, recv(t, r.fired, "a fire within its deadline").Skip)
	}
	lostN := r.metrics.skips.WithLabelValues("a", string(SkipLeaseLost))
	require.Eventually(t, func() bool {
		var m dto.Metric
		return lostN.Write(&m) == nil && m.GetCounter().GetValue() == 1+60
	}, 10*time.Second, 10*time.Millisecond, "every fire is counted as lease-lost")
	require.Empty(t, claimed(t, claims))
}

// TestSchedulerPrunesClaims: a scheduler with claims prunes them as it
// goes: another entry's claims older than Keep are removed but its newest;
// its own recent claims stay. The scheduler is a single one (no Leading):
// pruning does not wait for leader election.
func TestSchedulerPrunesClaims(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	for i := range 100 {
		oldClaim(t, claims, "gone", t0.Add(-2*time.Hour+time.Duration(i)*time.Minute), "old_0")
	}
	r := startReplica(t, clk, claims, "one_1", nil)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	o := recv(t, r.fired, "the fire")
	require.Empty(t, o.Skip)
	// Pruning runs beside the loop: poll the folder (without failing on
	// a file removed between listing and reading) until it is done.
	require.Eventually(t, func() bool {
		des, err := os.ReadDir(filepath.Join(claims, "gone"))
		return err == nil && len(des) == 1
	}, 10*time.Second, 10*time.Millisecond, "the old claims are pruned, the newest kept")
	_, err := os.Stat(filepath.Join(claims, "gone", t0.Add(-2*time.Hour+99*time.Minute).Format(claimLayout)))
	require.NoError(t, err, "the newest old claim is kept")
	require.Equal(t, map[time.Time]string{t0.Add(10 * time.Second): "one_1"}, claimed(t, claims))
}

// TestLostLeaseStopsBetweenFiles: an entry's next file does not start once
// the fence fell, even before the scheduler is told to stop.
func TestLostLeaseStopsBetweenFiles(t *testing.T) {
	clk := clock.NewFake(t0)
	var lost atomic.Bool
	leading := func() error {
		if lost.Load() {
			return fmt.Errorf("%w: the Lease names %q", ErrLeaseLost, "two_2")
		}
		return nil
	}
	fired := make(chan Outcome, 4)
	var started atomic.Int32
	sch := &Scheduler{
		Schedule: writeSchedule(t, `  entries:
    - {name: a, experiments: [exp.yaml, other.yaml], cron: "*/10 * * * * *"}
`),
		Clock: clk,
		RunFile: func(context.Context, string, string) *reports.Record {
			started.Add(1)
			lost.Store(true) // the Lease goes while the first file runs
			return &reports.Record{Verdict: reports.Passed}
		},
		Claims: &Claims{Dir: t.TempDir(), Identity: "one_1", Leading: leading},
		Fired:  func(o Outcome) { fired <- o },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second)
	o := recv(t, fired, "the fire's outcome")
	require.Len(t, o.Records, 1, "the second file did not start")
	require.EqualValues(t, 1, started.Load())
}

// TestClaimInstantRace: schedulers racing for one instant: exactly one
// claims it, and every loser can read who won (the claim is never seen
// empty).
func TestClaimInstantRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	type result struct {
		id  string
		ok  bool
		err error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	for i := range n {
		id := fmt.Sprintf("host_%d", i)
		go func() {
			<-start
			ok, err := ClaimInstant(dir, t0, id)
			results <- result{id, ok, err}
		}()
	}
	close(start)
	c := &Claims{Dir: dir}
	var winner string
	var losers []string
	for range n {
		r := recv(t, results, "a claimer")
		require.NoError(t, r.err)
		if r.ok {
			require.Empty(t, winner, "two schedulers claimed one instant: %s and %s", winner, r.id)
			winner = r.id
			continue
		}
		losers = append(losers, c.holder(t0))
	}
	require.NotEmpty(t, winner, "one claimed the instant")
	for _, who := range losers {
		require.Equal(t, winner, who, "a loser reads who won")
	}
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, des, 1, "only the claim: no temporary file is left")
}

// TestInstantClaimCoversItsFires: two replicas on one claims directory
// reach the same instants, each with 30 entries due on them, and race for
// every instant's claim (both ask before either writes): each instant is
// claimed once, in one file, and all 30 of its fires are decided by the
// replica that claimed it; the other skips every one of them as claimed,
// naming the claimer. No fire is decided by both, none by neither.
func TestInstantClaimCoversItsFires(t *testing.T) {
	const n = 30
	var b strings.Builder
	b.WriteString("  entries:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - {name: e%02d, experiments: [exp.yaml], cron: \"*/10 * * * * *\", concurrencyPolicy: Allow}\n", i)
	}
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	for i := range n {
		began(t, claims, fmt.Sprintf("e%02d", i), t0) // nothing to catch up
	}
	// The first claim of each replica waits for the other's, so that
	// both race for the first instant.
	var arrived atomic.Int32
	both := make(chan struct{})
	leading := func() error {
		if arrived.Add(1) == 2 {
			close(both)
		}
		<-both
		return nil
	}
	one := startReplicaOf(t, clk, claims, "one_1", leading, b.String())
	two := startReplicaOf(t, clk, claims, "two_2", leading, b.String())
	for k := 1; k <= 3; k++ {
		waitTimers(t, clk, 2)
		clk.Advance(10 * time.Second)
		at := t0.Add(time.Duration(k) * 10 * time.Second)
		decided := map[string]string{} // entry: the replica that ran it
		skipped := map[string]string{}
		for _, r := range []*replica{one, two} {
			for range n {
				o := recv(t, r.fired, r.id+"'s outcome")
				require.Equal(t, at, o.At)
				switch o.Skip {
				case "":
					require.Len(t, o.Records, 1)
					require.NotContains(t, decided, o.Entry, "the fire of %s due %s ran on both replicas", o.Entry, at)
					decided[o.Entry] = r.id
				case SkipClaimed:
					require.Empty(t, o.Records)
					skipped[o.Entry] = r.id
				default:
					t.Fatalf("the fire of %s due %s: %+v", o.Entry, at, o)
				}
			}
		}
		require.Len(t, decided, n, "every fire due %s ran once", at)
		require.Len(t, skipped, n)
		winner := claimed(t, claims)[at]
		require.Contains(t, []string{"one_1", "two_2"}, winner, "the instant %s is claimed in one file", at)
		for e, who := range decided {
			require.Equal(t, winner, who, "the fire of %s due %s ran on the replica that claimed its instant", e, at)
			require.NotEqual(t, winner, skipped[e])
		}
	}
	got := claimed(t, claims)
	require.Len(t, got, 3, "one claim per instant, not one per fire")
	// The loser's skips name the claimer: checked on a fresh instant.
	waitTimers(t, clk, 2)
	clk.Advance(10 * time.Second)
	at := t0.Add(40 * time.Second)
	for _, r := range []*replica{one, two} {
		for range n {
			o := recv(t, r.fired, r.id+"'s outcome")
			if o.Skip == SkipClaimed {
				require.Contains(t, o.Detail, "another replica ("+claimed(t, claims)[at]+") claimed this fire's instant")
			}
		}
	}
}

// TestOldLayoutDirectory: a state directory the versions before
// per-instant claims left, with a claim per fire in an entry folder
// (STATE/fires/SCHEDULE/ENTRY/TIME) and no since file. A leader of this
// version resumes each entry from its newest old claim: the old leader's
// fire (10:00:10) is not decided again, the gap after it is caught up as
// any gap is, under claims of its instants; an entry with no old claim
// is new to the directory and catches up nothing.
func TestOldLayoutDirectory(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	oldClaim(t, claims, "a", t0, "old_0")
	oldClaim(t, claims, "a", t0.Add(10*time.Second), "old_0")
	clk.Advance(47 * time.Second) // 10:00:47
	r := startReplicaOf(t, clk, claims, "two_2", leading, `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
    - {name: b, experiments: [other.yaml], cron: "*/10 * * * * *", startingDeadline: 20s}
`)
	got := r.outcomes(t, 3)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	require.Equal(t, SkipMissed, got[at(20)].Skip)
	require.Equal(t, SkipMissed, got[at(30)].Skip)
	require.Empty(t, got[at(40)].Skip, "the newest fire of the gap runs")
	for _, o := range got {
		require.Equal(t, "a", o.Entry, "b has no record: nothing caught up")
	}
	require.Equal(t, map[time.Time]string{at(20): "two_2", at(30): "two_2", at(40): "two_2"}, claimed(t, claims),
		"the gap is claimed per instant; the old claims are not redone")
	old, err := (&Claims{}).list(filepath.Join(claims, "a"))
	require.NoError(t, err)
	require.Equal(t, []time.Time{t0, at(10)}, old, "the old claims stay (until pruned)")
	// From then on both entries fire under one claim per instant.
	waitTimers(t, clk, 1)
	clk.Advance(3 * time.Second) // 10:00:50
	for range 2 {
		o := recv(t, r.fired, "a fire due 10:00:50")
		require.Equal(t, at(50), o.At)
		require.Empty(t, o.Skip)
	}
	require.Equal(t, "two_2", claimed(t, claims)[at(50)])
}

// TestLeaseLostAfterTheInstantClaim: the fence falls right after a
// replica claimed an instant: the instant's fires are still its own (the
// claim covers them), so it skips every one as lease-lost, running none,
// and the next leader does not decide them again: it resumes after that
// instant.
func TestLeaseLostAfterTheInstantClaim(t *testing.T) {
	entries := `  entries:
    - {name: a, experiments: [exp.yaml], cron: "*/10 * * * * *", concurrencyPolicy: Allow}
    - {name: b, experiments: [exp.yaml], cron: "*/10 * * * * *", concurrencyPolicy: Allow}
    - {name: c, experiments: [exp.yaml], cron: "*/10 * * * * *", concurrencyPolicy: Allow}
`
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	for _, e := range []string{"a", "b", "c"} {
		began(t, claims, e, t0)
	}
	var calls atomic.Int32
	one := startReplicaOf(t, clk, claims, "one_1", func() error {
		if calls.Add(1) == 1 {
			return nil // the instant's claim
		}
		return fmt.Errorf("%w: not renewed", ErrLeaseLost)
	}, entries)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second) // 10:00:10
	for range 3 {
		o := recv(t, one.fired, "a fire of the claimed instant")
		require.Equal(t, SkipLeaseLost, o.Skip, "%+v", o)
		require.Contains(t, o.Detail, "after this replica claimed the fire's instant")
		require.Empty(t, o.Records)
	}
	require.Equal(t, map[time.Time]string{t0.Add(10 * time.Second): "one_1"}, claimed(t, claims))
	one.stop()

	clk.Advance(5 * time.Second) // 10:00:15
	two := startReplicaOf(t, clk, claims, "two_2", leading, entries)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second) // 10:00:20
	for range 3 {
		o := recv(t, two.fired, "the next leader's fire")
		require.Equal(t, t0.Add(20*time.Second), o.At, "the instant the old leader claimed is not decided again")
		require.Empty(t, o.Skip)
	}
}

// TestInstantClaimedAhead: a leader claims an instant claimAhead before it
// is due, so its fires do not wait for the claim's sync; nothing is
// decided before the instant is due.
func TestInstantClaimedAhead(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	began(t, claims, "a", t0)
	r := startReplica(t, clk, claims, "one_1", leading)
	waitTimers(t, clk, 1)
	clk.Advance(10*time.Second - claimAhead) // 10:00:09
	require.Eventually(t, func() bool {
		return claimed(t, claims)[t0.Add(10*time.Second)] == "one_1"
	}, 10*time.Second, 10*time.Millisecond, "the instant due 10:00:10 is claimed at 10:00:09")
	select {
	case o := <-r.fired:
		t.Fatalf("a fire decided before it was due: %+v", o)
	default:
	}
	waitTimers(t, clk, 1)
	clk.Advance(claimAhead)
	o := recv(t, r.fired, "the fire")
	require.Equal(t, t0.Add(10*time.Second), o.At)
	require.Empty(t, o.Skip)
	require.Equal(t, t0.Add(10*time.Second), o.Started, "run when due, not before")
}
