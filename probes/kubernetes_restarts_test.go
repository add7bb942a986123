package probes

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/chaos-run/chaos/experiments"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// restartedPod is a pod with one container "app" that restarted count times, the
// last run ending at finished (zero: no last state).
func restartedPod(uid string, count int32, finished time.Time) corev1.Pod {
	cs := corev1.ContainerStatus{Name: "app", RestartCount: count}
	if !finished.IsZero() {
		cs.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(finished)}
	}
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{cs}}}
}

func TestRestartsCountIncreasesSeenWithinTheWindow(t *testing.T) {
	tr := newRestartTracker(5 * time.Minute)
	require.Equal(t, 0, tr.observe(t0, []corev1.Pod{restartedPod("a", 0, time.Time{})}), "a container that never restarted")
	require.Equal(t, 2, tr.observe(t0.Add(time.Second), []corev1.Pod{restartedPod("a", 2, t0)}),
		"two restarts between observations count two, whatever the last finish time says")
	require.Equal(t, 3, tr.observe(t0.Add(2*time.Minute), []corev1.Pod{restartedPod("a", 3, t0)}), "one more restart adds to those still in the window")
	require.Equal(t, 1, tr.observe(t0.Add(5*time.Minute+time.Second), []corev1.Pod{restartedPod("a", 3, t0)}),
		"the first two restarts were seen more than 5m ago and leave the window; the third stays")
	require.Equal(t, 0, tr.observe(t0.Add(7*time.Minute+time.Second), []corev1.Pod{restartedPod("a", 3, t0)}), "nothing within the window")
}

// At the first observation the probe cannot know when earlier restarts
// happened, except the last one: it counts that one if it is in the window.
func TestRestartsBaselineCountsOnlyTheLastRestartInTheWindow(t *testing.T) {
	tr := newRestartTracker(5 * time.Minute)
	got := tr.observe(t0, []corev1.Pod{
		restartedPod("recent", 7, t0.Add(-time.Minute)),
		restartedPod("old", 4, t0.Add(-time.Hour)),
		restartedPod("no-last-state", 2, time.Time{}),
		restartedPod("node-clock-ahead", 1, t0.Add(3*time.Second)),
	})
	require.Equal(t, 2, got, "one for the container whose last run ended a minute ago, one for the node ahead of us; none for a restart an hour ago or with no time")
	require.Equal(t, 1, tr.observe(t0.Add(4*time.Minute+time.Second), nil),
		"the restart a minute before the first observation leaves the window 4m later; the one dated now (clock ahead) stays")
}

func TestRestartsReplacedPodIsNotARestart(t *testing.T) {
	tr := newRestartTracker(time.Minute)
	require.Equal(t, 0, tr.observe(t0, []corev1.Pod{restartedPod("old", 0, time.Time{})}))
	require.Equal(t, 0, tr.observe(t0.Add(time.Second), []corev1.Pod{restartedPod("new", 0, time.Time{})}),
		"a pod deleted and replaced: the new pod's count starts at 0, nothing restarted")
	require.Len(t, tr.seen, 1, "the deleted pod's containers are forgotten")
	require.Equal(t, 0, tr.observe(t0.Add(2*time.Second), []corev1.Pod{restartedPod("old", 0, time.Time{}), restartedPod("new", 0, time.Time{})}))
}

// An observation whose pods are older than the tracker's (it outlived the
// next one) must not take the counts back, or the next observation would
// count the same restart again.
func TestRestartsStaleObservationDoesNotCountTwice(t *testing.T) {
	p := &kubernetesProber{now: func() time.Time { return t0.Add(2 * time.Second) }, restarts: newRestartTracker(time.Minute)}
	require.Equal(t, 0, p.countRestarts(1, []corev1.Pod{restartedPod("a", 0, time.Time{})}))
	// Observations 2 and 3 started; 3 answered first, with the restart.
	require.Equal(t, 1, p.countRestarts(3, []corev1.Pod{restartedPod("a", 1, t0)}))
	require.Equal(t, 1, p.countRestarts(2, []corev1.Pod{restartedPod("a", 0, time.Time{})}), "the late answer from before the restart changes nothing")
	require.Equal(t, 1, p.countRestarts(4, []corev1.Pod{restartedPod("a", 1, t0)}), "so the next observation does not count the restart again")
}

func TestRestartsInitContainersAreTheirOwn(t *testing.T) {
	tr := newRestartTracker(time.Minute)
	p := restartedPod("a", 0, time.Time{})
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "app", RestartCount: 0}}
	require.Equal(t, 0, tr.observe(t0, []corev1.Pod{p}))
	p = *p.DeepCopy()
	p.Status.InitContainerStatuses[0].RestartCount = 1
	require.Equal(t, 1, tr.observe(t0.Add(time.Second), []corev1.Pod{p}), "an init container named like a container is tracked apart from it")
}

func TestCountPodsByPhase(t *testing.T) {
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	now := metav1.NewTime(t0)
	pods := []corev1.Pod{
		{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{ready}}},
		{Status: corev1.PodStatus{Phase: corev1.PodRunning}},
		{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{ready}}},
		{Status: corev1.PodStatus{Phase: corev1.PodPending}},
		{},
		{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
		{Status: corev1.PodStatus{Phase: corev1.PodFailed}},
		{Status: corev1.PodStatus{Phase: corev1.PodUnknown}},
	}
	var o experiments.KubernetesObservation
	countPods(&o, pods)
	require.Equal(t, experiments.KubernetesObservation{
		Pods: 8, PodsRunning: 3, PodsPending: 2, PodsSucceeded: 1, PodsFailed: 1, PodsUnknown: 1, PodsReady: 1, PodsTerminating: 1,
	}, o, "a pod being deleted counts in its phase and as terminating, never as ready; no phase yet is pending")
}
