package probes

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// restartTracker counts container restarts within a window from what a
// kubernetes probe lists at each observation. The API server only keeps a
// running restartCount per container and the time of the last
// termination, so a count "in the last 5 minutes" has to be built from
// successive observations:
//
//   - A container seen before whose restartCount went up by n restarted n
//     times since the last observation; the n restarts are dated at this
//     observation (when they were seen, not when they happened).
//   - A container seen for the first time (at the first observation, or a
//     pod that appeared since) with a restartCount above 0 counts one
//     restart if its lastState.terminated.finishedAt falls within the
//     window, dated then: earlier restarts have no time the API keeps, and
//     counting all of them would count restarts from before the window.
//   - A pod replaced by a new one is not a restart (its uid differs): the
//     new pod's containers are first seen with their own counts.
//   - An observation that could not list the pods changes nothing.
//
// Only containers of pods listed at the latest observation are
// remembered, and only restarts within the window are kept, so what it
// holds is bounded by the pods and by the restarts seen.
type restartTracker struct {
	window time.Duration
	seen   map[containerKey]int32
	events []restartEvent
}

type containerKey struct {
	pod  types.UID
	name string
}

type restartEvent struct {
	at time.Time
	n  int
}

func newRestartTracker(window time.Duration) *restartTracker {
	return &restartTracker{window: window, seen: map[containerKey]int32{}}
}

// count returns the restarts it knows within (now-window, now], without
// new pods (for an observation whose pods are older than those it has).
func (t *restartTracker) count(now time.Time) int { return t.prune(now.Add(-t.window)) }

// observe takes the pods listed at now and returns the restarts within
// (now-window, now].
func (t *restartTracker) observe(now time.Time, pods []corev1.Pod) int {
	since := now.Add(-t.window)
	next := make(map[containerKey]int32, len(t.seen))
	seenNow := 0
	for i := range pods {
		pod := &pods[i]
		for _, list := range []struct {
			prefix   string
			statuses []corev1.ContainerStatus
		}{{"init:", pod.Status.InitContainerStatuses}, {"", pod.Status.ContainerStatuses}} {
			for _, cs := range list.statuses {
				k := containerKey{pod: pod.UID, name: list.prefix + cs.Name}
				prev, known := t.seen[k]
				switch {
				case known && cs.RestartCount > prev:
					seenNow += int(cs.RestartCount - prev)
				case !known && cs.RestartCount > 0:
					if at, ok := lastFinished(cs); ok && at.After(since) {
						// A node's clock a little ahead of ours must not
						// date a restart in the future.
						t.events = append(t.events, restartEvent{at: minTime(at, now), n: 1})
					}
				}
				next[k] = cs.RestartCount
			}
		}
	}
	t.seen = next
	if seenNow > 0 {
		t.events = append(t.events, restartEvent{at: now, n: seenNow})
	}
	return t.prune(since)
}

// prune forgets the restarts at or before since and counts the others.
func (t *restartTracker) prune(since time.Time) int {
	kept, total := t.events[:0], 0
	for _, e := range t.events {
		if e.at.After(since) {
			kept = append(kept, e)
			total += e.n
		}
	}
	t.events = kept
	return total
}

// lastFinished is when the container's last run ended, if the API says.
func lastFinished(cs corev1.ContainerStatus) (time.Time, bool) {
	term := cs.LastTerminationState.Terminated
	if term == nil || term.FinishedAt.IsZero() {
		return time.Time{}, false
	}
	return term.FinishedAt.Time, true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
