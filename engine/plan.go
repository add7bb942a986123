package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// DryRun checks everything a run would check before injecting (probes
// build, plugins start and accept every fault, no dead run left faults on
// the targets) and writes the plan: what, where, when, under which budget.
// It injects nothing and prepares nothing. It returns a non-nil error when
// the run would be refused.
func DryRun(ctx context.Context, exp *experiments.Experiment, opts Options, w io.Writer) error {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = exp.Spec.Safety.LeaseTTL
	}
	opts.defaults()
	r := newRun(exp, opts)
	ok := r.check(ctx)
	for _, name := range sortedNames(r.plugins) {
		r.plugins[name].Close()
	}
	if ok && opts.Ledger != nil {
		if open, err := opts.Ledger.OpenFor(r.targetKeys()); err != nil || len(open) > 0 {
			ok = false
			r.reason = fmt.Sprintf("the ledger has %d fault(s) on these targets never confirmed reverted; run `chaos recover` first", len(open))
			if err != nil {
				r.reason = "read the ledger: " + err.Error()
			}
		}
	}
	if !ok {
		return fmt.Errorf("the run would be refused: %s", r.reason)
	}
	writePlan(w, exp, opts)
	return nil
}

func writePlan(w io.Writer, exp *experiments.Experiment, opts Options) {
	s := &exp.Spec
	p := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format+"\n", a...) }
	p("plan for %s (owner: %s) — dry run, nothing will be injected", exp.Metadata.Name, exp.Metadata.Owner.Team)
	p("hypothesis: %s", strings.TrimSpace(s.Hypothesis))
	p("targets:")
	for _, name := range sortedNames(s.Targets) {
		t := s.Targets[name]
		if t.Endpoint != nil {
			p("  %s: endpoint, clients connect to %s, service answers on %s", name, t.Endpoint.Listen, t.Endpoint.Upstream)
		}
	}
	p("probes:")
	for _, name := range sortedNames(s.Probes) {
		pr := s.Probes[name]
		if pr.HTTP != nil {
			p("  %s: http %s %s every %s, timeout %s", name, pr.HTTP.Method, pr.HTTP.URL, pr.Every, pr.Timeout)
		}
	}
	p("steady state (before, during, after):")
	for _, x := range s.SteadyState {
		p("  %s", x.Source)
	}
	p("schedule (from the start of the fault phase, which lasts %s):", s.FaultPhase())
	faults := append([]*experiments.Fault(nil), s.Faults...)
	sort.SliceStable(faults, func(i, j int) bool { return faults[i].After < faults[j].After })
	for _, f := range faults {
		until := "until the phase ends"
		if f.For > 0 {
			until = fmt.Sprintf("until +%s", f.After+f.For)
		}
		p("  +%s %s on %s %v, %s", f.After, f.Plugin, f.Target, f.With, until)
	}
	p("budget:")
	for _, x := range s.Budget.AbortWhen {
		p("  abort when %s", x.Source)
	}
	if eb := s.Budget.ErrorBudget; eb != nil {
		p("  error budget: SLO %v%% over %s, the experiment may spend %v%% of it: %s of failure", float64(eb.SLO), time.Duration(eb.Window), float64(eb.MaxSpend), eb.Allowance())
	}
	p("safety: maxDuration %s, lease %s (a plugin reverts by itself if the run stops renewing)", s.Safety.EffectiveMaxDuration(), opts.LeaseTTL)
}
