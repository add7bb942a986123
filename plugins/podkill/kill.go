package podkill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// pollEvery is how often a revert looks for replacements.
const pollEvery = 200 * time.Millisecond

// reserve is kept from a revert's deadline, so that the answer (with the
// replacements found so far) reaches the host before the host gives up.
const reserve = time.Second

// kill is one injection: the pods deleted and what became of them.
type kill struct {
	params Params
	cs     *clientSet

	// existed are the uids of the candidates at the kill: a pod that was
	// already there is never taken for a replacement.
	existed map[types.UID]bool

	mu       sync.Mutex
	pods     []*killed
	reverted bool
	waited   bool
}

// killed is one deleted pod and its replacement.
type killed struct {
	pod corev1.Pod
	at  time.Time
	// replacement is the owner's new pod, once it was seen Ready, and when.
	replacement string
	readyAt     time.Time
}

// begin marks the kill as reverted; false if it already was.
func (k *kill) begin() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.reverted {
		return false
	}
	k.reverted = true
	return true
}

func (k *kill) active() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return !k.reverted
}

// summary names the killed pods, for the handle (and so the ledger).
func (k *kill) summary() string {
	names := make([]string, len(k.pods))
	for i, p := range k.pods {
		names[i] = podName(p.pod)
	}
	slices.Sort(names)
	return fmt.Sprintf("killed %s; a kill is not revertible", joinNames(names, 20))
}

// detail says, per killed pod, when it was killed and when its
// replacement was Ready.
func (k *kill) detail() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var b strings.Builder
	for i, p := range k.pods {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s killed at %s", podName(p.pod), p.at.UTC().Format(time.RFC3339Nano))
		switch {
		case metav1.GetControllerOf(&p.pod) == nil:
			b.WriteString(", no owner to replace it")
		case !p.readyAt.IsZero():
			fmt.Fprintf(&b, ", replacement %s Ready at %s (after %s)", p.replacement, p.readyAt.UTC().Format(time.RFC3339Nano), p.readyAt.Sub(p.at).Round(time.Millisecond))
		case k.waited:
			b.WriteString(", no Ready replacement within the wait")
		}
	}
	return b.String()
}

// awaitReplacements waits until every killed pod with an owner has a new
// Ready pod of that owner, or recoveryTimeout or ctx's deadline (less a
// reserve) passes. It records what it saw; not seeing a replacement is a
// finding, not an error of the revert.
func (k *kill) awaitReplacements(ctx context.Context) {
	deadline := time.Now().Add(k.params.RecoveryTimeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-reserve).Before(deadline) {
		deadline = d.Add(-reserve)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	defer func() {
		k.mu.Lock()
		k.waited = true
		k.mu.Unlock()
	}()

	k.mu.Lock()
	// Killed pods per owner, and per namespace which pods are not new.
	want := map[types.UID][]*killed{}
	old := map[types.UID]bool{}
	for uid := range k.existed {
		old[uid] = true
	}
	namespaces := map[string]bool{}
	for _, p := range k.pods {
		old[p.pod.UID] = true
		if ref := metav1.GetControllerOf(&p.pod); ref != nil {
			want[ref.UID] = append(want[ref.UID], p)
			namespaces[p.pod.Namespace] = true
		}
	}
	k.mu.Unlock()
	if len(want) == 0 {
		return
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if k.look(ctx, namespaces, want, old) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// look lists the namespaces once and pairs each killed pod with a new Ready
// pod of its owner, oldest first. It says whether all are paired.
func (k *kill) look(ctx context.Context, namespaces map[string]bool, want map[types.UID][]*killed, old map[types.UID]bool) bool {
	now := time.Now()
	fresh := map[types.UID][]corev1.Pod{}
	for ns := range namespaces {
		list, err := k.cs.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false // try again on the next tick, until the deadline
		}
		for _, pod := range list.Items {
			ref := metav1.GetControllerOf(&pod)
			if ref == nil || old[pod.UID] || pod.DeletionTimestamp != nil || !podReady(&pod) {
				continue
			}
			fresh[ref.UID] = append(fresh[ref.UID], pod)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	done := true
	for owner, killedPods := range want {
		news := fresh[owner]
		slices.SortFunc(news, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
		taken := map[string]bool{}
		for _, p := range killedPods {
			if p.replacement != "" {
				taken[p.replacement] = true
			}
		}
		for _, p := range killedPods {
			if p.replacement != "" {
				continue
			}
			for _, n := range news {
				name := n.Namespace + "/" + n.Name
				// Creation times are whole seconds: a replacement was
				// created no earlier than the second of the kill.
				if n.CreationTimestamp.Time.Before(p.at.Truncate(time.Second)) {
					continue
				}
				if !taken[name] {
					taken[name] = true
					ra := readySince(&n, now)
					if ra.Before(p.at) {
						// The condition's time is whole seconds: Ready
						// came within the second it names, so its end
						// bounds it (not the later time this look ran).
						ra = ra.Add(time.Second)
						if ra.Before(p.at) {
							ra = p.at
						}
						if ra.After(now) {
							ra = now
						}
					}
					p.replacement, p.readyAt = name, ra
					break
				}
			}
			if p.replacement == "" {
				done = false
			}
		}
	}
	return done
}

// readySince is when the pod's Ready condition last turned True (the API
// server's second-precision time), or now when it does not say.
func readySince(p *corev1.Pod, now time.Time) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return now
}
