package latency

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSpinLeadFollowsHowLateSleepsWake: the lead starts at its most, comes
// down to the 90th percentile of the last wakeRing nanosleeps' lateness
// plus the margin once most are quick, ignores a few very late wakes (a
// preempted thread), goes back up when late wakes are more than a tenth,
// and stays within its bounds.
func TestSpinLeadFollowsHowLateSleepsWake(t *testing.T) {
	saved := make([]int64, wakeRing)
	for i := range wakes {
		saved[i] = wakes[i].Load()
	}
	t.Cleanup(func() {
		for i := range wakes {
			wakes[i].Store(saved[i])
		}
	})
	note := func(n int, late time.Duration) {
		for range n {
			noteWake(late)
		}
	}
	note(wakeRing, maxSpinLead)
	require.Equal(t, maxSpinLead, spinLead(), "a fresh process spins the longest")

	note(wakeRing/2, 30*time.Microsecond)
	require.Equal(t, maxSpinLead, spinLead(), "half the ring still slow keeps the lead up")
	note(wakeRing, 40*time.Microsecond)
	require.Equal(t, 40*time.Microsecond+spinMargin, spinLead(), "all quick: their lateness plus the margin")

	note(3, 5*time.Millisecond)
	require.Equal(t, 40*time.Microsecond+spinMargin, spinLead(), "a few wakes milliseconds late do not move it")
	note(wakeRing/5, 150*time.Microsecond)
	require.Equal(t, 150*time.Microsecond+spinMargin, spinLead(), "more than a tenth late raises it")
	note(wakeRing, time.Second)
	require.Equal(t, maxSpinLead, spinLead(), "never more than the most")
	note(wakeRing, -time.Microsecond) // a clock reading that went backwards
	require.Equal(t, minSpinLead, spinLead(), "never less than the least")
}
