package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWindowsCountOnlyObservationsInsideTheFault runs on explicit times:
// an observation counts for a fault only if it started after the inject
// was confirmed and ended before the revert began.
func TestWindowsCountOnlyObservationsInsideTheFault(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := newWindows([]string{"front"})

	w.observe("front", at(0), at(50)) // before any fault
	w.open(0, "latency on link", at(100))
	require.False(t, w.observe("front", at(90), at(150)), "started before the inject was confirmed")
	require.True(t, w.observe("front", at(100), at(200)), "started as the inject was confirmed")
	require.False(t, w.observe("other", at(200), at(210)), "not a steady-state probe")
	w.open(1, "latency on db", at(250))
	require.True(t, w.observe("front", at(260), at(300)), "inside both windows")
	require.Equal(t, map[string]int{"front": 1}, w.counts(1))
	w.close(0, at(400))
	require.True(t, w.observe("front", at(390), at(410)), "inside fault 1, which is still live")
	require.Equal(t, map[string]int{"front": 2}, w.counts(0), "the last observation ended after fault 0's revert began")
	require.Equal(t, map[string]int{"front": 2}, w.counts(1), "both in-window observations of fault 1")
	require.Nil(t, w.counts(2), "a fault never injected has no window")
	require.Equal(t, 3, w.inWindowChecks(), "each in-window observation is one check, however many windows it is in")
	require.Empty(t, w.unobserved())

	w.open(2, "latency on cache", at(500))
	w.close(2, at(600))
	require.Equal(t, "probe front made no observation while fault 2 (latency on cache) was live", w.unobserved())
}
