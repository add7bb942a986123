package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chaos-run/chaos/reports"
)

// causeFaultUnobserved is the cause of a failed verdict whose hypothesis
// could not be checked: a steady-state probe made no observation while a
// fault was live.
const causeFaultUnobserved reports.Cause = "fault-unobserved"

// A fault's window is the time it was certainly live: from the moment its
// inject was confirmed to the moment its revert began. Only an observation
// that started after the one and ended before the other saw the fault; one
// that started before the inject (a slow probe, a long interval) or ended
// after the revert began says nothing of it. A fault window that a
// steady-state probe did not observe cannot support a verdict of passed.

// faultWindow is one fault's window and what observed it.
type faultWindow struct {
	what         string
	opened       time.Time
	closed       time.Time // zero while the revert has not begun
	observations map[string]int
}

// windows tracks the fault windows of a run. It is safe for concurrent use:
// reverts run concurrently.
type windows struct {
	// probes are the steady-state probes; only their observations count.
	probes map[string]bool

	mu   sync.Mutex
	byID map[int]*faultWindow
	// checks counts the observations of steady-state probes made inside a
	// live window; each is one check of the steady state while faults
	// were live.
	checks int
}

func newWindows(steadyProbes []string) *windows {
	w := &windows{probes: map[string]bool{}, byID: map[int]*faultWindow{}}
	for _, p := range steadyProbes {
		w.probes[p] = true
	}
	return w
}

// open starts fault id's window at at, when its inject was confirmed.
func (w *windows) open(id int, what string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byID[id] = &faultWindow{what: what, opened: at, observations: map[string]int{}}
}

// close ends fault id's window at at, when its revert began.
func (w *windows) close(id int, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fw := w.byID[id]; fw != nil && fw.closed.IsZero() {
		fw.closed = at
	}
}

// observe counts an observation of probe that ran from start to end in
// every window it lies inside, and reports whether it lay inside any.
func (w *windows) observe(probe string, start, end time.Time) bool {
	if !w.probes[probe] {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	inside := false
	for _, fw := range w.byID {
		// An observation that starts as the revert begins saw nothing of
		// the fault (on a fake clock it takes no time at all).
		if start.Before(fw.opened) || !fw.closed.IsZero() && (end.After(fw.closed) || !start.Before(fw.closed)) {
			continue
		}
		fw.observations[probe]++
		inside = true
	}
	if inside {
		w.checks++
	}
	return inside
}

// counts are the observations per steady-state probe in fault id's window;
// nil when the fault was never injected.
func (w *windows) counts(id int) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	fw := w.byID[id]
	if fw == nil {
		return nil
	}
	out := make(map[string]int, len(w.probes))
	for p := range w.probes {
		out[p] = fw.observations[p]
	}
	return out
}

// unobserved describes the first fault window (by fault index) that a
// steady-state probe did not observe; "" when every window was observed.
func (w *windows) unobserved() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]int, 0, len(w.byID))
	for id := range w.byID {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	probes := make([]string, 0, len(w.probes))
	for p := range w.probes {
		probes = append(probes, p)
	}
	sort.Strings(probes)
	for _, id := range ids {
		fw := w.byID[id]
		var missing []string
		for _, p := range probes {
			if fw.observations[p] == 0 {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("probe %s made no observation while fault %d (%s) was live", strings.Join(missing, ", "), id, fw.what)
		}
	}
	return ""
}

// inWindowChecks is how many observations of steady-state probes were made
// inside a live fault window.
func (w *windows) inWindowChecks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checks
}
