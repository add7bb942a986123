package scheduler

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/chaos-run/chaos/internal/clock"
)

// memLock is a Lease in memory: the fence's logic is pure; the real Lease
// is exercised by e2e/leader_test.go against the test cluster.
type memLock struct {
	id     string
	clk    *clock.Fake
	rec    resourcelock.LeaderElectionRecord
	err    error         // every call fails with it when set
	during time.Duration // a write takes this long on the clock
}

func (l *memLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	if l.err != nil {
		return nil, nil, l.err
	}
	r := l.rec
	return &r, []byte(r.HolderIdentity), nil
}

func (l *memLock) write(ler resourcelock.LeaderElectionRecord) error {
	l.clk.Advance(l.during)
	if l.err != nil {
		return l.err
	}
	l.rec = ler
	return nil
}

func (l *memLock) Create(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.write(ler)
}

func (l *memLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.write(ler)
}
func (l *memLock) RecordEvent(string) {}
func (l *memLock) Identity() string   { return l.id }
func (l *memLock) Describe() string   { return "mem/" + l.id }
func mine(id string) resourcelock.LeaderElectionRecord {
	return resourcelock.LeaderElectionRecord{HolderIdentity: id}
}

// TestFenceFallsAtTheRenewDeadline: the fence stands only while the last
// successful write naming this replica started less than the renew
// deadline ago (from when the write started, not ended), fails writes
// renew nothing, and once fallen it never stands again.
func TestFenceFallsAtTheRenewDeadline(t *testing.T) {
	clk := clock.NewFake(t0)
	l := &memLock{id: "one_1", clk: clk, during: time.Second}
	f := newLeaseFence(l, clk, 10*time.Second)
	require.ErrorIs(t, f.Leading(), ErrLeaseLost, "never held")
	require.NoError(t, f.Create(t.Context(), mine("one_1")))
	require.NoError(t, f.Leading())
	clk.Advance(8 * time.Second) // 9s after the write started
	require.NoError(t, f.Leading())
	l.err = errors.New("the API server does not answer")
	require.Error(t, f.Update(t.Context(), mine("one_1")))
	// 10s after the last good write started: the fence is down, though
	// client-go would go on trying for a renew deadline more.
	require.ErrorIs(t, f.Leading(), ErrLeaseLost)
	require.ErrorContains(t, f.Leading(), "not renewed for 10s")
	l.err = nil
	require.ErrorIs(t, f.Update(t.Context(), mine("one_1")), ErrLeaseLost, "a fallen fence renews nothing")
	require.ErrorIs(t, f.Leading(), ErrLeaseLost, "a fallen fence stays down: the replica exits rather than lead twice")
}

// TestFallenFenceReleasesNothing: woken from a stop, client-go releases
// the Lease from its stale view (it still thinks it holds it); the fence
// refuses the write, so the new leader's Lease is left alone.
func TestFallenFenceReleasesNothing(t *testing.T) {
	clk := clock.NewFake(t0)
	l := &memLock{id: "one_1", clk: clk}
	f := newLeaseFence(l, clk, 10*time.Second)
	require.NoError(t, f.Update(t.Context(), mine("one_1")))
	clk.Advance(time.Minute) // stopped
	l.rec = mine("two_2")    // the follower took the Lease meanwhile
	_, _, err := f.Get(t.Context())
	require.NoError(t, err)
	require.ErrorIs(t, f.Update(t.Context(), resourcelock.LeaderElectionRecord{}), ErrLeaseLost)
	require.Equal(t, "two_2", l.rec.HolderIdentity, "the new leader's Lease is untouched")
}

// TestFenceFallsOnAnotherHolder: once this replica has led, a read of the
// Lease naming another holder (replaced through the API, or taken while
// this process was stopped) drops the fence at once, and wakes watch;
// before it led, another holder is just the leader it follows.
func TestFenceFallsOnAnotherHolder(t *testing.T) {
	clk := clock.NewFake(t0)
	l := &memLock{id: "one_1", clk: clk, rec: mine("two_2")}
	f := newLeaseFence(l, clk, 10*time.Second)
	_, _, err := f.Get(t.Context())
	require.NoError(t, err)
	require.ErrorContains(t, f.Leading(), "never held", "a follower's reads drop nothing")
	require.NoError(t, f.Update(t.Context(), mine("one_1")))
	require.NoError(t, f.Leading())

	watched := make(chan error, 1)
	go func() { watched <- f.watch(t.Context()) }()
	waitTimers(t, clk, 1)
	l.rec = mine("intruder")
	_, _, err = f.Get(t.Context())
	require.NoError(t, err)
	err = recv(t, watched, "watch returns")
	require.ErrorIs(t, err, ErrLeaseLost)
	require.ErrorContains(t, err, `the Lease names "intruder"`)
	require.Equal(t, err, f.Leading())
}

// TestFenceWatchWaitsForTheDeadline: watch waits on the clock, renewed
// deadlines move it on, and it returns nil when its context ends.
func TestFenceWatchWaitsForTheDeadline(t *testing.T) {
	clk := clock.NewFake(t0)
	l := &memLock{id: "one_1", clk: clk}
	f := newLeaseFence(l, clk, 10*time.Second)
	require.NoError(t, f.Create(t.Context(), mine("one_1")))
	watched := make(chan error, 1)
	go func() { watched <- f.watch(t.Context()) }()
	waitTimers(t, clk, 1)
	clk.Advance(6 * time.Second)
	require.NoError(t, f.Update(t.Context(), mine("one_1")))
	clk.Advance(4 * time.Second) // the first deadline: renewed since
	waitTimers(t, clk, 1)
	select {
	case err := <-watched:
		t.Fatalf("watch returned though the Lease was renewed: %v", err)
	default:
	}
	clk.Advance(6 * time.Second)
	require.ErrorIs(t, recv(t, watched, "watch returns at the renewed deadline"), ErrLeaseLost)

	// Release (a write naming no one, on a clean stop) drops the fence.
	g := newLeaseFence(&memLock{id: "one_1", clk: clk}, clk, 10*time.Second)
	require.NoError(t, g.Update(t.Context(), mine("one_1")))
	ctx, cancel := context.WithCancel(t.Context())
	go func() { watched <- g.watch(ctx) }()
	waitTimers(t, clk, 1)
	cancel()
	require.NoError(t, recv(t, watched, "watch returns when its context ends"))
	require.NoError(t, g.Update(t.Context(), resourcelock.LeaderElectionRecord{}))
	require.ErrorContains(t, g.Leading(), "released")
}
