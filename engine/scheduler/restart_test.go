package scheduler

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
)

// The tests of a single scheduler (no leader election: Claims without
// Leading) restarted on its state directory. Entry a fires every 10s with
// a 20s starting deadline (startReplica).

// TestRestartCatchesUpTheFireMissedWhileDown: a single scheduler starts at
// 10:00:00 on an empty state directory and is stopped at 10:00:05, before
// the entry's first fire. Started again at 10:00:15, it runs the 10:00:10
// fire it missed (5s late, within the deadline), once, counted as caught
// up; then it schedules on.
func TestRestartCatchesUpTheFireMissedWhileDown(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	one := startReplica(t, clk, claims, "host_1", nil)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()
	require.Empty(t, claimed(t, claims, "a"), "stopped before the first fire: nothing decided")

	clk.Advance(10 * time.Second) // 10:00:15
	two := startReplica(t, clk, claims, "host_2", nil)
	o := recv(t, two.fired, "the missed fire")
	require.Equal(t, t0.Add(10*time.Second), o.At)
	require.Empty(t, o.Skip, "within its starting deadline: it runs (%s)", o.Detail)
	require.True(t, o.CaughtUp)
	require.Len(t, o.Records, 1)
	require.Equal(t, t0.Add(15*time.Second), o.Started, "it ran when the scheduler began again")
	require.InDelta(t, 1, count(t, two.metrics.caughtUps.WithLabelValues("a")), 0, "the catch-up is counted")
	require.Equal(t, map[time.Time]string{t0.Add(10 * time.Second): "host_2"}, claimed(t, claims, "a"))

	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second) // 10:00:20
	o = recv(t, two.fired, "the next fire")
	require.Equal(t, t0.Add(20*time.Second), o.At)
	require.Empty(t, o.Skip)
	require.False(t, o.CaughtUp, "a fire on time is not a catch-up")
	two.stop()

	// A third start right after catches up nothing: every fire up to now
	// was decided.
	three := startReplica(t, clk, claims, "host_3", nil)
	waitTimers(t, clk, 1)
	clk.Advance(10 * time.Second) // 10:00:30
	o = recv(t, three.fired, "the next fire")
	require.Equal(t, t0.Add(30*time.Second), o.At, "nothing before it was decided again")
	require.Len(t, claimed(t, claims, "a"), 3)
}

// TestRestartPastTheDeadlineSkipsAsMissed: down from 10:00:05 to 10:00:47,
// the scheduler missed :10, :20, :30 and :40. Only :40 is within its
// deadline and runs; the others are skipped as missed, counted, and say
// that the scheduler was not running (there is no leader to speak of).
// Down past every deadline, nothing runs.
func TestRestartPastTheDeadlineSkipsAsMissed(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	one := startReplica(t, clk, claims, "host_1", nil)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()

	clk.Advance(42 * time.Second) // 10:00:47
	two := startReplica(t, clk, claims, "host_2", nil)
	got := two.outcomes(t, 4)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, s := range []int{10, 20} {
		require.Equal(t, SkipMissed, got[at(s)].Skip, "the fire due :%d is past its deadline", s)
		require.Contains(t, got[at(s)].Detail, "no scheduler was running on this state directory")
		require.NotContains(t, got[at(s)].Detail, "leading", "a single scheduler has no leader")
	}
	require.Equal(t, SkipMissed, got[at(30)].Skip, "only the newest fire of the gap is caught up")
	require.Contains(t, got[at(30)].Detail, "no scheduler was running on this state directory, and a later fire")
	require.Empty(t, got[at(40)].Skip)
	require.True(t, got[at(40)].CaughtUp)
	require.InDelta(t, 3, count(t, two.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0)
}

// TestRestartPastTheNewestDeadline: an entry fires every minute with a 20s
// deadline; the scheduler is down from 10:00:05 to 10:01:30, so even the
// newest fire it missed (10:01:00) is past its deadline: skipped as
// missed, saying why, and nothing runs late.
func TestRestartPastTheNewestDeadline(t *testing.T) {
	const minutely = `  entries:
    - {name: a, experiments: [exp.yaml], cron: "0 * * * * *", startingDeadline: 20s}
`
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	one := startReplicaOf(t, clk, claims, "host_1", nil, minutely)
	waitTimers(t, clk, 1)
	clk.Advance(5 * time.Second)
	one.stop()

	clk.Advance(85 * time.Second) // 10:01:30
	two := startReplicaOf(t, clk, claims, "host_2", nil, minutely)
	o := recv(t, two.fired, "the missed fire")
	require.Equal(t, t0.Add(time.Minute), o.At)
	require.Equal(t, SkipMissed, o.Skip)
	require.False(t, o.CaughtUp)
	require.Empty(t, o.Records, "nothing ran")
	require.Equal(t, "no scheduler was running on this state directory: due at 2026-03-06T10:01:00Z, past its starting deadline of 20s", o.Detail)
	require.InDelta(t, 1, count(t, two.metrics.skips.WithLabelValues("a", string(SkipMissed))), 0)
	require.Zero(t, count(t, two.metrics.caughtUps.WithLabelValues("a")), "nothing ran late")
	require.Equal(t, map[time.Time]string{t0.Add(time.Minute): "host_2"}, claimed(t, claims, "a"), "the skip is decided once")
}

// TestFirstStartCatchesUpNothing: a scheduler's first start on a state
// directory, empty or written by an older version (no fires folder),
// catches up nothing, however the entry's cron lies behind it; it records
// where the entry's record begins and waits for the next fire.
func TestFirstStartCatchesUpNothing(t *testing.T) {
	for name, dir := range map[string]func(t *testing.T) string{
		"empty": func(t *testing.T) string { return t.TempDir() },
		"older version": func(t *testing.T) string {
			state := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(state, "ledger.lock"), nil, 0o600), "an older version's state")
			return filepath.Join(state, "fires")
		},
	} {
		t.Run(name, func(t *testing.T) {
			clk := clock.NewFake(t0.Add(47 * time.Second))
			claims := dir(t)
			r := startReplica(t, clk, claims, "host_1", nil)
			require.Eventually(t, func() bool {
				_, err := os.Stat(filepath.Join(claims, "a", sinceFile))
				return err == nil
			}, 10*time.Second, 10*time.Millisecond, "the entry's record begins")
			since, err := (&Claims{Dir: claims}).since("a")
			require.NoError(t, err)
			require.Equal(t, t0.Add(47*time.Second), since)
			waitTimers(t, clk, 1)
			clk.Advance(3 * time.Second)
			o := recv(t, r.fired, "the first fire")
			require.Equal(t, t0.Add(50*time.Second), o.At, "no fire before the first start was decided")
			require.Empty(t, o.Skip)
			require.False(t, o.CaughtUp)
			require.Zero(t, count(t, r.metrics.skips.WithLabelValues("a", string(SkipMissed))), "nothing is missed on a first start")
		})
	}
}

// TestTwoSchedulersOneStateDir: two single schedulers started on one state
// directory by mistake decide every fire once between them: the other
// skips it as claimed and names who decided it.
func TestTwoSchedulersOneStateDir(t *testing.T) {
	clk := clock.NewFake(t0)
	claims := t.TempDir()
	one := startReplica(t, clk, claims, "host_1", nil)
	two := startReplica(t, clk, claims, "host_2", nil)
	ids := map[string]*replica{"host_1": one, "host_2": two}
	for n := 1; n <= 3; n++ {
		waitTimers(t, clk, 2)
		clk.Advance(10 * time.Second)
		a := recv(t, one.fired, "one's outcome")
		b := recv(t, two.fired, "two's outcome")
		due := t0.Add(time.Duration(n) * 10 * time.Second)
		require.Equal(t, due, a.At)
		require.Equal(t, due, b.At)
		if a.Skip == SkipClaimed {
			a, b = b, a
		}
		require.Empty(t, a.Skip, "one of them runs the fire due %s", due)
		require.Len(t, a.Records, 1)
		require.Equal(t, SkipClaimed, b.Skip, "the other skips it")
		require.Empty(t, b.Records)
		who := claimed(t, claims, "a")[due]
		require.Contains(t, ids, who)
		require.Equal(t, "another scheduler on this state directory ("+who+") claimed this fire", b.Detail)
	}
	require.Len(t, claimed(t, claims, "a"), 3, "every fire was claimed once")
	runs := count(t, one.metrics.runs.WithLabelValues("a", "passed")) + count(t, two.metrics.runs.WithLabelValues("a", "passed"))
	require.InDelta(t, 3, runs, 0, "three fires, three runs between them")
}

// TestResumeRecord: where an entry's record ends is its newest claim, or
// its since file; a since file that cannot be read is an error that names
// it, not a guess.
func TestResumeRecord(t *testing.T) {
	c := &Claims{Dir: t.TempDir(), Identity: "host_1", Keep: ClaimMargin}
	at, err := c.Resume("a", t0)
	require.NoError(t, err)
	require.True(t, at.IsZero(), "a new entry has nothing to catch up")
	at, err = c.Resume("a", t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, t0, at, "the record began at the first start; a later start keeps it")
	ok, err := c.Claim("a", t0.Add(time.Minute), t0.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok)
	at, err = c.Resume("a", t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Minute), at, "the newest claim is where the record ends")

	require.NoError(t, os.MkdirAll(filepath.Join(c.Dir, "b"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(c.Dir, "b", sinceFile), []byte("yesterday\n"), 0o600))
	_, err = c.Resume("b", t0)
	require.Error(t, err)
	require.Contains(t, err.Error(), filepath.Join(c.Dir, "b", sinceFile), "the error names the file")

	des, err := os.ReadDir(filepath.Join(c.Dir, "a"))
	require.NoError(t, err)
	require.Len(t, des, 2, "the since file and the claim")
	des, err = os.ReadDir(c.Dir)
	require.NoError(t, err)
	for _, de := range des {
		require.True(t, de.IsDir(), "no temporary file is left: %s", de.Name())
	}
}

// TestClaimFireRace: schedulers racing for one fire: exactly one claims
// it, and every loser can read who won (the claim is never seen empty).
func TestClaimFireRace(t *testing.T) {
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
			ok, err := ClaimFire(dir, "a", t0, id)
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
			require.Empty(t, winner, "two schedulers claimed one fire: %s and %s", winner, r.id)
			winner = r.id
			continue
		}
		losers = append(losers, c.holder("a", t0))
	}
	require.NotEmpty(t, winner, "one claimed the fire")
	for _, who := range losers {
		require.Equal(t, winner, who, "a loser reads who won")
	}
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, des, 1, "only the entry's folder: no temporary file is left")
}
