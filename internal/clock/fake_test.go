package clock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeFiresTimersInOrderOfTheirDueTime(t *testing.T) {
	c := clock.NewFake(epoch)
	late := c.NewTimer(3 * time.Second)
	early := c.NewTimer(time.Second)
	never := c.NewTimer(time.Hour)
	require.Equal(t, 3, c.Pending(), "three timers wait for time to pass")
	d, ok := c.Next()
	require.True(t, ok)
	require.Equal(t, time.Second, d, "the earliest timer is due first")

	c.Advance(5 * time.Second)
	require.Equal(t, epoch.Add(time.Second), <-early.C(), "a timer fires with its own due time")
	require.Equal(t, epoch.Add(3*time.Second), <-late.C())
	require.Equal(t, 1, c.Pending(), "a timer not yet due stays pending")
	require.True(t, never.Stop(), "stopping a pending timer reports it was pending")
	require.False(t, never.Stop(), "a stopped timer is no longer pending")
	require.Equal(t, epoch.Add(5*time.Second), c.Now())
}

func TestFakeZeroTimerFiresAtOnce(t *testing.T) {
	c := clock.NewFake(epoch)
	select {
	case <-c.NewTimer(0).C():
	default:
		require.FailNow(t, "a timer of zero must fire without the clock moving")
	}
}

func TestFakeBlockUntilWaitsForTheCodeUnderTest(t *testing.T) {
	c := clock.NewFake(epoch)
	fired := make(chan struct{})
	go func() {
		<-c.NewTimer(time.Minute).C()
		close(fired)
	}()
	require.NoError(t, c.BlockUntil(t.Context(), 1), "the goroutine sets its timer")
	c.Advance(time.Minute)
	<-fired
}
