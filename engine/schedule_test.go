package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

func TestScheduleOrdersInjectsAndTimedReverts(t *testing.T) {
	s := newSchedule([]*experiments.Fault{
		{After: 10 * time.Second, For: 20 * time.Second},
		{After: 0}, // no for: reverted at the end of the phase
		{After: 30 * time.Second, For: time.Second}, // injected as fault 0 is reverted
	}, 40*time.Second)
	require.Equal(t, []step{
		{at: 0, fault: 1, inject: true},
		{at: 10 * time.Second, fault: 0, inject: true},
		{at: 30 * time.Second, fault: 0},
		{at: 30 * time.Second, fault: 2, inject: true},
		{at: 31 * time.Second, fault: 2},
	}, s.steps, "steps in time order; steps due at once keep the file's order")

	due, next := s.due(0, 0)
	require.Equal(t, []step{{at: 0, fault: 1, inject: true}}, due, "at the start only the inject at 0s is due")
	w, over := s.wait(next, 0)
	require.Equal(t, 10*time.Second, w, "then it waits for the next step")
	require.False(t, over)

	due, next = s.due(next, 30*time.Second)
	require.Len(t, due, 3, "a late turn runs every step that came due, in order")
	due, next = s.due(next, 35*time.Second)
	require.Len(t, due, 1)
	w, over = s.wait(next, 35*time.Second)
	require.Equal(t, 5*time.Second, w, "after the last step the phase waits for its end")
	require.False(t, over)
	_, over = s.wait(next, 40*time.Second)
	require.True(t, over, "the phase is over at its end once every step ran")
}
