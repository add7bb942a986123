package engine

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
)

func newFakeClock() *clock.Fake {
	return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// waitTimers waits until n timers are pending: the goroutines under test
// have done their work and wait for time to pass.
func waitTimers(t *testing.T, c *clock.Fake, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, c.BlockUntil(ctx, n), "the goroutine under test never waited for time again")
}

// renewer is a plugin that answers renewals with err, and records them.
type renewer struct {
	FaultPlugin // only Renew and Revert are called
	err         error
	renews      chan string
	reverting   chan struct{} // closed when Revert is called
}

func (p *renewer) Renew(context.Context, string, time.Duration) error {
	p.renews <- "renew"
	return p.err
}

// Revert hangs until its context ends, as a stopped plugin does.
func (p *renewer) Revert(ctx context.Context, _ string) (bool, error) {
	close(p.reverting)
	<-ctx.Done()
	return false, ctx.Err()
}

func testRun(clock *clock.Fake, ttl time.Duration, p *renewer) *run {
	opts := Options{Clock: clock, LeaseTTL: ttl, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.defaults()
	r := &run{opts: opts, log: opts.Log}
	r.holds.add(&hold{id: "run/fault-0", plugin: p, name: "fake", handle: "h1", what: "fake on link", asked: clock.Now()})
	return r
}

func startKeeper(t *testing.T, r *run) chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	lost := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { r.keepLeases(ctx, lost) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return lost
}

// A runner whose loop stops beating stops renewing: its plugins revert by
// lease. Renewals resume once the loop beats again.
func TestStuckRunStopsRenewingLeases(t *testing.T) {
	clock := newFakeClock()
	p := &renewer{renews: make(chan string, 10)}
	r := testRun(clock, 9*time.Second, p) // renewals every 3s; stale after 4.5s
	r.beat()
	lost := startKeeper(t, r)

	waitTimers(t, clock, 1)
	clock.Advance(3 * time.Second)
	waitTimers(t, clock, 1)
	require.Len(t, p.renews, 1, "a run that beat 3s ago renews its leases")
	<-p.renews

	r.beat()
	clock.Advance(3 * time.Second)
	waitTimers(t, clock, 1)
	require.Len(t, p.renews, 1, "a run that beat 3s ago renews its leases")
	<-p.renews

	// No beat since t=3s: at t=9s the run is stuck.
	clock.Advance(3 * time.Second)
	waitTimers(t, clock, 1)
	require.Empty(t, p.renews, "a run that has not beaten for half a lease must not renew: its plugins revert by lease")

	r.beat()
	clock.Advance(3 * time.Second) // t=12s, within the lease renewed at 6s
	waitTimers(t, clock, 1)
	require.Len(t, p.renews, 1, "renewals resume once the loop beats again")
	<-p.renews

	// Stuck for longer than the lease: when the run beats again, the lease
	// is lost (the plugin has reverted by itself), not renewed.
	for range 3 { // the last beat was at 9s: stale at 15s, 18s and 21s
		clock.Advance(3 * time.Second)
		waitTimers(t, clock, 1)
	}
	require.Empty(t, p.renews, "a stale run does not renew")
	r.beat()
	clock.Advance(3 * time.Second) // t=24s: past the lease renewed at 12s
	require.ErrorIs(t, <-lost, ErrLeaseLost, "a lease that ran out while the run was stuck is lost")
}

// Renewals that time out until a whole TTL has passed since the last one
// that succeeded lose the lease, and mark the plugin not answering.
func TestLeaseLostWhenRenewalsTimeOut(t *testing.T) {
	clock := newFakeClock()
	p := &renewer{err: context.DeadlineExceeded, renews: make(chan string, 10)}
	r := testRun(clock, 9*time.Second, p)
	r.beat()
	lost := startKeeper(t, r)

	waitTimers(t, clock, 1)
	for range 2 { // t=3s, t=6s: failing, but within the lease
		r.beat()
		clock.Advance(3 * time.Second)
		waitTimers(t, clock, 1)
		require.Empty(t, lost, "a renewal that failed within the lease is tried again, not yet a lost lease")
	}
	require.False(t, r.silent.marked("fake"))

	r.beat()
	clock.Advance(3 * time.Second) // t=9s: a whole TTL since the fault was injected
	err := <-lost
	require.ErrorIs(t, err, ErrLeaseLost, "no renewal for a whole TTL is a lost lease")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the lost lease says the renewals timed out")
	require.True(t, r.silent.marked("fake"), "the plugin is marked not answering, so it is killed rather than asked")
}

// A plugin found not answering ends the calls in flight to it at once: a
// hung revert does not cost the revert timeout.
func TestNotAnsweringPluginEndsItsCalls(t *testing.T) {
	clock := newFakeClock()
	p := &renewer{renews: make(chan string, 10), reverting: make(chan struct{})}
	r := testRun(clock, 9*time.Second, p)
	h := r.holds.snapshot()[0]
	go func() {
		<-p.reverting
		r.silent.mark("fake", context.DeadlineExceeded)
	}()
	err := r.release(t.Context(), h)
	require.ErrorIs(t, err, ErrPluginNotAnswering)
	require.Len(t, r.holds.snapshot(), 1, "a hold whose revert was not confirmed stays held")
}

// An evaluation past its deadline is stuck: the caller gets
// ErrEvaluationStuck without waiting for it, and nothing more is evaluated.
func TestEvaluationPastItsDeadlineIsStuck(t *testing.T) {
	clock := newFakeClock()
	r := testRun(clock, 9*time.Second, &renewer{})
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- r.bounded(t.Context(), func() {
			close(started)
			<-release // an expression that never returns
		})
	}()
	<-started
	waitTimers(t, clock, 1)
	clock.Advance(r.opts.EvalTimeout)
	err := <-errc
	require.ErrorIs(t, err, ErrEvaluationStuck)

	ran := false
	err = r.bounded(t.Context(), func() { ran = true })
	require.ErrorIs(t, err, ErrEvaluationStuck, "once stuck, the run evaluates nothing more")
	require.False(t, ran)
}
