package scheduler

import (
	"os"
	"slices"
	"sync"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// live is a run in progress: of which entry, on which targets (conflict
// keys), how to stop it, and a channel closed when it has ended (reverted
// and reported).
type live struct {
	entry  string
	keys   []string
	cancel func(error)
	done   chan struct{}
}

// action is what the policy says a fire does now.
type action int

const (
	actRun  action = iota // start the run
	actSkip               // skip it (Forbid)
	actWait               // wait for waitFor to end, then decide again
)

// decision is the policy's answer for one fire.
type decision struct {
	act action
	// cancel are the live runs to stop first (Replace: the entry's own).
	cancel []*live
	// waitFor are the conflicting runs to wait for.
	waitFor []*live
}

// decide applies the entry's concurrency policy to the runs that are live.
// A live run conflicts when it is of the same entry or shares a target key
// with keys: chaos never runs two experiments on one target, whatever the
// policy (the target locks make sure of it even when keys miss a
// conflict). It is pure.
func decide(policy, entry string, keys []string, running []*live) decision {
	var conflicts, own []*live
	for _, l := range running {
		if l.entry == entry || overlaps(l.keys, keys) {
			conflicts = append(conflicts, l)
			if l.entry == entry {
				own = append(own, l)
			}
		}
	}
	if len(conflicts) == 0 {
		return decision{act: actRun}
	}
	switch policy {
	case experiments.ConcurrencyAllow:
		return decision{act: actWait, waitFor: conflicts}
	case experiments.ConcurrencyReplace:
		// Only the entry's own runs are replaced: another entry's run is
		// not this entry's to stop, so that one is waited for.
		return decision{act: actWait, cancel: own, waitFor: conflicts}
	default: // Forbid
		return decision{act: actSkip, waitFor: conflicts}
	}
}

func overlaps(a, b []string) bool {
	for _, k := range a {
		if slices.Contains(b, k) {
			return true
		}
	}
	return false
}

// conflictKeys are what the experiment files act on, as far as the files
// say before anything is resolved: the endpoint's upstream, the
// Kubernetes namespace and selector, the host, the process. Two files that
// name one thing differently are still kept apart by the target locks
// (the later run is refused); these keys let the policy decide first.
func conflictKeys(files []string, cache *keyCache) []string {
	var keys []string
	for _, f := range files {
		keys = append(keys, "file:"+f)
		keys = append(keys, cache.keys(f)...)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// keyCache keeps each file's target keys while the file is unchanged (same
// size and modification time): loading an experiment costs far more than
// a fire may wait.
type keyCache struct {
	mu    sync.Mutex
	files map[string]cachedKeys
}

type cachedKeys struct {
	mod  time.Time
	size int64
	keys []string
}

func (c *keyCache) keys(f string) []string {
	st, err := os.Stat(f)
	if err != nil {
		return nil // the run itself will say the file is missing
	}
	c.mu.Lock()
	if k, ok := c.files[f]; ok && k.mod.Equal(st.ModTime()) && k.size == st.Size() {
		c.mu.Unlock()
		return k.keys
	}
	c.mu.Unlock()
	keys := targetKeys(f)
	c.mu.Lock()
	if c.files == nil {
		c.files = map[string]cachedKeys{}
	}
	c.files[f] = cachedKeys{mod: st.ModTime(), size: st.Size(), keys: keys}
	c.mu.Unlock()
	return keys
}

// targetKeys are the keys of the targets of one experiment file.
func targetKeys(f string) []string {
	var keys []string
	{
		exp, err := experiments.Load(f, experiments.Options{AllowUnsetSecrets: true})
		if err != nil {
			return nil // the run itself will say it is invalid
		}
		for _, t := range exp.Spec.Targets {
			switch {
			case t.Endpoint != nil:
				keys = append(keys, "endpoint:"+t.Endpoint.Upstream, "listen:"+t.Endpoint.Listen)
			case t.Kubernetes != nil:
				keys = append(keys, "kubernetes:"+t.Kubernetes.Namespace+"/"+t.Kubernetes.Selector)
			case t.Host != nil:
				keys = append(keys, "host")
			case t.Process != nil:
				keys = append(keys, "host") // a process is on this host; its cgroup is shared with host faults
			}
		}
	}
	return keys
}
