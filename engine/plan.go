package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// PlanError is why a dry run found that the run could not go ahead: the
// verdict, cause and reason the run would have ended with.
type PlanError struct {
	Verdict reports.Verdict
	Cause   reports.Cause
	Reason  string
}

func (e *PlanError) Error() string { return "the run would be " + string(e.Verdict) + ": " + e.Reason }

// DryRun checks everything a run would check before injecting (probes
// build, plugins start and accept every fault, no dead run left faults on
// the targets) and writes the plan: what, where, when, under which budget.
// It injects nothing and prepares nothing. It returns a *PlanError when the
// run would be refused or is invalid.
func DryRun(ctx context.Context, exp *experiments.Experiment, opts Options, w io.Writer) error {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = exp.Spec.Safety.LeaseTTL
	}
	opts.defaults()
	r := newRun(exp, opts)
	// Targets are resolved as a run resolves them, so the plan names the
	// things the faults would act on and the blast radius is checked.
	ok := r.check(ctx) && r.resolveTargets(ctx)
	for _, name := range sortedNames(r.plugins) {
		r.plugins[name].Close()
	}
	if ok {
		ok = r.ledgerClear(r.targetKeys())
	}
	if !ok {
		v, cause, reason := r.decided()
		return &PlanError{Verdict: v, Cause: cause, Reason: experiments.Redact(reason, exp.Secrets())}
	}
	var b strings.Builder
	writePlan(&b, exp, opts, r.resolved)
	// Whatever a file's values hold, the plan is output like any other:
	// no resolved secret may reach it.
	_, err := io.WriteString(w, experiments.Redact(b.String(), exp.Secrets()))
	return err
}

func writePlan(w io.Writer, exp *experiments.Experiment, opts Options, resolved map[string]sdk.Resolution) {
	s := &exp.Spec
	p := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format+"\n", a...) }
	p("plan for %s (owner: %s) — dry run, nothing will be injected", exp.Metadata.Name, exp.Metadata.Owner.Team)
	p("hypothesis: %s", strings.TrimSpace(s.Hypothesis))
	p("targets:")
	for _, name := range sortedNames(s.Targets) {
		p("  %s: %s", name, describeTarget(s.Targets[name]))
	}
	if len(resolved) > 0 {
		p("resolved now (what the faults would act on):")
		for _, key := range sortedNames(resolved) {
			var names []string
			for _, th := range resolved[key].Things {
				names = append(names, th.Name)
			}
			p("  %s: %s", key, strings.Join(names, ", "))
		}
	}
	p("probes:")
	for _, name := range sortedNames(s.Probes) {
		pr := s.Probes[name]
		p("  %s: %s every %s, timeout %s", name, describeProbe(pr), pr.Every, pr.Timeout)
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
	eb := s.Budget.ErrorBudget
	if len(s.Budget.AbortWhen) == 0 && eb == nil {
		p("budget: none (only safety.maxDuration, the kill switch and Ctrl-C stop the run early)")
	} else {
		p("budget:")
	}
	for _, x := range s.Budget.AbortWhen {
		p("  abort when %s", x.Source)
	}
	if eb != nil {
		p("  error budget: SLO %v%% over %s, the experiment may spend %v%% of it: %s of failure", float64(eb.SLO), time.Duration(eb.Window), float64(eb.MaxSpend), eb.Allowance())
	}
	p("safety: maxDuration %s, lease %s (a plugin reverts by itself if the run stops renewing)", s.Safety.EffectiveMaxDuration(), opts.LeaseTTL)
}

// describeTarget says in a few words what a target is, whatever its kind.
func describeTarget(t *experiments.Target) string {
	switch {
	case t.Endpoint != nil:
		return fmt.Sprintf("endpoint, clients connect to %s, service answers on %s", t.Endpoint.Listen, t.Endpoint.Upstream)
	case t.Kubernetes != nil:
		k := t.Kubernetes
		pick := fmt.Sprintf("%d pod(s)", k.Pick.Count)
		switch {
		case k.Pick.All:
			pick = "every pod"
		case k.Pick.Percent > 0:
			pick = k.Pick.Percent.String() + " of the pods"
		}
		return fmt.Sprintf("kubernetes, %s in namespace %s matching %s", pick, k.Namespace, k.Selector)
	case t.Host != nil:
		return "host, the machine chaos runs on"
	case t.Process != nil:
		pr := t.Process
		switch {
		case pr.PID > 0:
			return fmt.Sprintf("process, pid %d", pr.PID)
		case pr.Name != "":
			return "process named " + pr.Name
		default:
			return "processes of cgroup " + pr.Cgroup
		}
	}
	return "of no kind"
}

// describeProbe says what a probe observes, whatever its kind. Credentials
// (headers, auth, exec env) are not printed, only that they are there.
func describeProbe(pr *experiments.Probe) string { return pr.Describe() }
