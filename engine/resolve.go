package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// Causes of runs refused or broken while their targets were resolved.
const (
	// causeBlastRadius: the resolved targets are more than the file's
	// safety.maxTargets or maxPercent allow.
	causeBlastRadius reports.Cause = "blast-radius"
	// causeResolveFailed: a plugin could not say what a target means now.
	causeResolveFailed reports.Cause = "resolve-failed"
)

// Resolver is the optional ability of a FaultPlugin to resolve a target
// (*sdk.Client has it). A plugin without it acts on the target as one
// thing, keyed as before resolution existed (sdk.DefaultResolution).
type Resolver interface {
	Resolve(ctx context.Context, req sdk.Request) (sdk.Resolution, error)
}

// resolveTargets asks each fault's plugin which concrete things its target
// means now, records them in the report, and has safety decide whether the
// faults may act on that many. The keys it finds are what claimTargets locks
// and what the ledger names. Nothing is changed anywhere.
func (r *run) resolveTargets(ctx context.Context) bool {
	r.resolved = map[string]sdk.Resolution{}
	var sets []safety.TargetSet
	for _, fl := range r.faults {
		key := fl.spec.Plugin + "/" + fl.spec.Target
		res, ok := r.resolved[key]
		if !ok {
			var err error
			if res, err = r.resolve(ctx, fl); err != nil {
				if errors.Is(err, sdk.ErrPluginExited) {
					r.pluginExited(fl.spec.Plugin, fmt.Sprintf("while resolving target %s (nothing was injected)", fl.spec.Target), err)
					return false
				}
				r.setVerdictCause(reports.Error, causeResolveFailed, fmt.Sprintf("resolve target %s with %s (nothing was injected): %v", fl.spec.Target, fl.spec.Plugin, err))
				return false
			}
			r.resolved[key] = res
			set := safety.TargetSet{Target: fl.spec.Target, Total: res.Total}
			for _, th := range res.Things {
				set.Things = append(set.Things, safety.Thing{Key: th.Key, Kind: th.Kind, Name: th.Name})
			}
			sets = append(sets, set)
		}
		names := make([]string, len(res.Things))
		for i, th := range res.Things {
			names[i] = th.Name
		}
		r.updateFault(fl, func(f *reports.Fault) { f.Resolved = names })
	}
	limits := safety.BlastLimits{MaxTargets: r.exp.Spec.Safety.MaxTargets, MaxPercent: float64(r.exp.Spec.Safety.MaxPercent)}
	if err := safety.CheckBlastRadius(sets, limits); err != nil {
		r.setVerdictCause(reports.Refused, causeBlastRadius, "refusing to start, nothing was injected: "+err.Error())
		return false
	}
	return true
}

// resolve asks one fault's plugin, bounded like any call that may block.
func (r *run) resolve(ctx context.Context, fl *fault) (sdk.Resolution, error) {
	rs, ok := fl.plugin.(Resolver)
	if !ok {
		return sdk.DefaultResolution(fl.req.Target), nil
	}
	r.busyFor(r.opts.RevertTimeout)
	cctx, cancel := context.WithTimeout(ctx, r.opts.RevertTimeout)
	defer cancel()
	res, err := rs.Resolve(cctx, fl.req)
	if err == nil && len(res.Things) == 0 {
		err = fmt.Errorf("target %s resolved to nothing", fl.spec.Target)
	}
	return res, err
}

// resolvedKeys are the lock keys of what a plugin's target resolved to:
// each thing's key and the keys it covers, sorted and unique. Before
// resolution (a dry run) it is the target's own key.
func (r *run) resolvedKeys(plugin string, t sdk.Target) (things, all []string) {
	res, ok := r.resolved[plugin+"/"+t.Name]
	if !ok {
		res = sdk.DefaultResolution(t)
	}
	seen := map[string]bool{}
	for _, th := range res.Things {
		things = append(things, th.Key)
		for _, k := range append([]string{th.Key}, th.Covers...) {
			if !seen[k] {
				seen[k] = true
				all = append(all, k)
			}
		}
	}
	sort.Strings(all)
	return things, all
}
