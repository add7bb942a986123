package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// Run runs one validated experiment and returns its record. The verdict is
// in the record; Run itself never fails, because every way a run can end is
// a verdict the owners must read. Cancelling ctx (Ctrl-C) aborts the run with
// context.Cause(ctx) as the reason; faults are reverted before Run returns.
func Run(ctx context.Context, exp *experiments.Experiment, opts Options) *reports.Record {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = exp.Spec.Safety.LeaseTTL
	}
	opts.defaults()
	r := newRun(exp, opts)
	r.execute(ctx)
	return r.finish()
}

// fault is one planned fault during a run.
type fault struct {
	index  int
	spec   *experiments.Fault
	plugin FaultPlugin
	req    sdk.Request
	// held is set once the fault is injected.
	held *hold
	// injected and reverted say how far the fault got.
	injected, reverted bool
}

// observation is one probe result on its way to the evaluator.
type observation struct {
	probe string
	// started and at are when the observation began and ended.
	started, at time.Time
	obs         experiments.Observation
}

type run struct {
	exp   *experiments.Experiment
	opts  Options
	log   interface{ Info(string, ...any) }
	start time.Time

	// recorder owns the record and the verdict (recorder.go).
	*recorder

	budget   *safety.Budget
	probers  map[string]Prober
	plugins  map[string]FaultPlugin
	descs    map[string]sdk.Description
	faults   []*fault
	prepared map[string]*hold // key: plugin + "/" + target
	// resolved is what each plugin's target means now (resolve.go), by
	// plugin + "/" + target.
	resolved map[string]sdk.Resolution
	holds    holds
	// leaseLost carries holds whose lease ran out or whose plugin is gone.
	leaseLost chan error
	// unlock releases the target locks; nil when none were taken.
	unlock func() error
	// heart is the run's proof of progress, which the lease keeper reads.
	heart heartbeat
	// silent are the plugins found not answering.
	silent silent
	// stuck is set, by the run's goroutine only, once an evaluation did
	// not finish in time or exceeded its memory budget: nothing is
	// evaluated after it. overrun is set by the evaluation itself when a
	// steady-state expression exceeded its memory budget.
	stuck, overrun error

	// latest observation per probe, read by the expressions, and the
	// history the budget functions (failureRatio, ...) read.
	latest  map[string]experiments.Observation
	history *experiments.History
	// breached tracks expressions currently not holding during the fault
	// phase, so the timeline records each breach once, not every tick.
	breached map[int]bool
	// windows are the faults' windows and what observed them (window.go).
	windows *windows
}

func newRun(exp *experiments.Experiment, opts Options) *run {
	start := opts.Clock.Now()
	id := opts.RunID
	if id == "" {
		id = newRunID(start)
	}
	rec := &reports.Record{RunID: id, Experiment: experimentOf(exp), StartedAt: start, Budget: budgetConditions(exp)}
	return &run{
		exp:      exp,
		opts:     opts,
		log:      opts.Log.With("run", id, "experiment", exp.Metadata.Name),
		start:    start,
		recorder: newRecorder(opts.Clock, rec, opts.Progress),
		budget:   safety.NewBudget(exp.Spec.Budget),
		probers:  map[string]Prober{},
		plugins:  map[string]FaultPlugin{},
		descs:    map[string]sdk.Description{},
		prepared: map[string]*hold{},
		latest:   map[string]experiments.Observation{},
		history:  exp.NewHistory(),
		breached: map[int]bool{},
		windows:  newWindows(exp.SteadyStateProbes()),
		// One report per hold at most: a fault and a preparation per fault.
		leaseLost: make(chan error, 2*len(exp.Spec.Faults)+1),
	}
}

func newRunID(t time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// execute is the lifecycle of DESIGN.md. Every step that can fail sets the
// verdict and returns; the deferred cleanup reverts whatever was done.
func (r *run) execute(parent context.Context) {
	maxDur := r.exp.Spec.Safety.EffectiveMaxDuration()
	ctx, cancel := r.deadline(parent, maxDur, fmt.Errorf("%w (%s)", ErrMaxDuration, maxDur))
	defer cancel()
	// Leases are renewed until the cleanup has released everything, so a
	// slow revert does not race its own lease.
	leaseCtx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	var keeper sync.WaitGroup
	r.beat()
	keeper.Go(func() { r.keepLeases(leaseCtx, r.leaseLost) })
	// Whatever happens below, every fault is reverted, every prepared
	// target released and every plugin closed, under a context no abort
	// can cancel.
	defer func() {
		r.cleanup(ctx)
		stopLeases()
		keeper.Wait()
	}()

	if !r.setUp(ctx) {
		// A plugin that could not start because the operator stopped the
		// run is the stop, not a broken runner.
		if v, _, _ := r.decided(); ctx.Err() != nil && v == reports.Error {
			r.undecide()
			r.abortedBy(ctx)
		}
		return
	}
	r.event(reports.EventPhase, "", true, "steady state before the faults", nil)
	r.busyFor(r.evalTimeoutFor())
	steady := r.steadyState(ctx, reports.Before)
	if ctx.Err() != nil {
		// Observations cut short by the stop say nothing of the service.
		r.abortedBy(ctx)
		return
	}
	if r.stuck != nil {
		r.evaluationFailed(nil, r.stuck)
		return
	}
	if !steady {
		r.setVerdictCause(reports.Failed, causeNotSteadyBefore, "not steady before the experiment: "+r.firstBreach(reports.Before)+"; nothing was injected")
		return
	}

	r.event(reports.EventPhase, "", true, "fault phase", nil)
	r.faultPhase(ctx)
	r.recordWindows()

	if v, _, _ := r.decided(); ctx.Err() != nil || v == reports.Error || r.stuck != nil {
		// Interrupted, out of time, broken, or unable to evaluate: the
		// operator wants out and the faults are already reverted. Do not
		// spend more time probing.
		if v == "" {
			r.abortedBy(ctx)
		}
		return
	}
	r.event(reports.EventPhase, "", true, "steady state after the faults", nil)
	r.busyFor(r.evalTimeoutFor())
	holdsAfter := r.steadyState(ctx, reports.After)
	v, _, _ := r.decided()
	switch {
	case r.stuck != nil && ctx.Err() == nil:
		r.evaluationFailed(nil, r.stuck)
	case v != "":
		// An abort during the phase stands; the after check is recorded.
	case r.anyBreach(reports.During):
		r.setVerdictCause(reports.Failed, causeSteadyStateBroke, "the steady state broke while faults were live: "+r.firstBreach(reports.During))
	case !holdsAfter:
		r.setVerdictCause(reports.Failed, causeNotRecovered, "the service did not recover after the faults were reverted: "+r.firstBreach(reports.After))
	case r.windows.unobserved() != "":
		// Never passed: nothing was seen of the service under the fault.
		// Failed rather than invalid or error, because the run itself
		// worked and the hypothesis was not shown to hold (DESIGN.md).
		r.setVerdictCause(reports.Failed, causeFaultUnobserved, "the hypothesis could not be checked: "+r.windows.unobserved())
	default:
		r.setVerdictCause(reports.Passed, causeHypothesisHeld, r.passedReason())
	}
}

// setUp builds probers, opens plugins, validates every fault with its plugin
// and prepares targets. Nothing is injected here.
func (r *run) setUp(ctx context.Context) bool {
	if !r.check(ctx) {
		return false
	}
	if !r.resolveTargets(ctx) || !r.claimTargets() {
		return false
	}
	for _, fl := range r.faults {
		key := fl.spec.Plugin + "/" + fl.spec.Target
		if h, ok := r.prepared[key]; ok {
			fl.req.Prepared = h.handle
			continue
		}
		if !r.descs[fl.spec.Plugin].CanPrepare {
			continue
		}
		h := &hold{
			id: r.runID() + "/prepared-" + fl.spec.Plugin + "-" + fl.spec.Target, plugin: fl.plugin, name: fl.spec.Plugin,
			req: fl.req, prepared: true, what: fmt.Sprintf("%s's preparation of %s", fl.spec.Plugin, fl.spec.Target),
		}
		if err := r.acquire(ctx, h); err != nil {
			if errors.Is(err, sdk.ErrPluginExited) {
				r.pluginExited(fl.spec.Plugin, fmt.Sprintf("while preparing target %s (nothing was injected)", fl.spec.Target), err)
				return false
			}
			msg := fmt.Sprintf("prepare target %s for %s: %v", fl.spec.Target, fl.spec.Plugin, err)
			if cause, ok := refusal(err); ok {
				r.setVerdictCause(reports.Refused, cause, "refusing to start: "+msg+"; nothing was injected")
				return false
			}
			r.setVerdictCause(reports.Error, causePrepareFailed, msg)
			return false
		}
		if h.handle != "" {
			r.prepared[key] = h
			fl.req.Prepared = h.handle
			r.event(reports.EventPhase, fl.spec.Target, true, fmt.Sprintf("%s prepared target %s (no fault yet)", fl.spec.Plugin, fl.spec.Target), nil)
		}
	}
	return true
}

// check builds probers, opens plugins and has each validate its faults.
// It changes nothing anywhere.
func (r *run) check(ctx context.Context) bool {
	if !r.admit(ctx) {
		return false
	}
	spec := &r.exp.Spec
	for _, name := range sortedNames(spec.Probes) {
		p, err := r.opts.NewProber(name, spec.Probes[name])
		if err != nil {
			r.setVerdictCause(reports.Invalid, causeInvalidProbe, err.Error())
			return false
		}
		r.probers[name] = p
	}
	byPlugin := map[string][]int{}
	for i, f := range spec.Faults {
		fl := &fault{index: i, spec: f}
		r.faults = append(r.faults, fl)
		r.recordFault(fl)
		pl, err := r.plugin(ctx, f.Plugin)
		if v, cause, ok := pluginRefusal(err); ok {
			r.setVerdictCause(v, cause, fmt.Sprintf("refusing to start plugin %s: %v; nothing was touched", f.Plugin, err))
			return false
		}
		if err != nil {
			r.setVerdictCause(reports.Error, causePluginStart, fmt.Sprintf("start plugin %s: %v", f.Plugin, err))
			return false
		}
		fl.plugin = pl
		fl.req = r.request(f)
		byPlugin[f.Plugin] = append(byPlugin[f.Plugin], i)
	}
	var problems []experiments.Problem
	for _, name := range sortedNames(byPlugin) {
		probs, err := checkFaults(ctx, r.exp, r.plugins[name], r.descs[name], byPlugin[name])
		if err != nil {
			r.setVerdictCause(reports.Error, causePluginStart, err.Error())
			return false
		}
		problems = append(problems, probs...)
	}
	if len(problems) > 0 {
		experiments.SortProblems(problems)
		fe := &experiments.FileError{File: r.exp.File, Problems: problems}
		r.setVerdictCause(reports.Invalid, causeInvalidParams, "the plugins refused these faults; nothing was injected: "+strings.ReplaceAll(fe.Error(), "\n", "; "))
		return false
	}
	return true
}

// Causes of the other verdicts decided here: every way a run ends has one.
const (
	causeHypothesisHeld  reports.Cause = "hypothesis-held"
	causeNotSteadyBefore reports.Cause = "not-steady-before"
	causeInvalidProbe    reports.Cause = "invalid-probe"
	causeInvalidParams   reports.Cause = "invalid-params"
	causePluginStart     reports.Cause = "plugin-start"
	causePrepareFailed   reports.Cause = "prepare-failed"
	causeStateFailed     reports.Cause = "state-failed"
	causeMaxDuration     reports.Cause = "max-duration"
	causeInterrupted     reports.Cause = "interrupted"
	causeKillSwitch      reports.Cause = "kill-switch"
	causeStopped         reports.Cause = "stopped"
	causeNoVerdict       reports.Cause = "no-verdict"
	causeNotReverted     reports.Cause = "not-reverted"
)

// Causes of the refused verdict: the environment said no before anything
// was touched. They are the stable words of report.json's "cause".
const (
	causeTargetLocked       reports.Cause = "target-locked"
	causeLedgerOpen         reports.Cause = "ledger-open"
	causeLedgerUnreadable   reports.Cause = "ledger-unreadable"
	causeErrorBudget        reports.Cause = "error-budget"
	causeErrorBudgetUnknown reports.Cause = "error-budget-unknown"
	causePluginRefused      reports.Cause = "plugin-refused"
	causeDiskFull           reports.Cause = "disk-full"
)

// refusal says whether err is the environment saying no before anything
// was touched (a plugin refusing, say, because its listen address is in
// use; a full disk under the ledger), and with which cause.
func refusal(err error) (reports.Cause, bool) {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return causeDiskFull, true
	case errors.Is(err, sdk.ErrRefused):
		return causePluginRefused, true
	}
	return "", false
}

// admissionTimeout bounds the query of the remaining error budget.
const admissionTimeout = 10 * time.Second

// admit refuses a run that would spend more error budget than is left,
// when the file names where to read what is left. An answer that cannot be
// read refuses too: admission is never a guess.
func (r *run) admit(ctx context.Context) bool {
	eb := r.exp.Spec.Budget.ErrorBudget
	if eb == nil || eb.Remaining == nil {
		return true
	}
	// The remaining budget is read with the real prometheus kind, whatever
	// probes the run was given: admission is a query, not a probe.
	pr, err := builtinProbers("budget.errorBudget.remaining", &experiments.Probe{Prometheus: eb.Remaining})
	if err != nil {
		r.setVerdictCause(reports.Invalid, causeInvalidProbe, "error budget admission: "+err.Error())
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, admissionTimeout)
	defer cancel()
	defer closeProber(pr)
	o, _ := pr.Probe(qctx).(experiments.PrometheusObservation)
	switch {
	case !o.OK:
		r.setVerdictCause(reports.Refused, causeErrorBudgetUnknown, "refusing to start: cannot tell how much error budget is left: "+o.Error)
		return false
	case o.Empty || math.IsNaN(o.Value):
		r.setVerdictCause(reports.Refused, causeErrorBudgetUnknown, "refusing to start: the query for the remaining error budget returned nothing, so the spend cannot be admitted")
		return false
	}
	left := o.Value * 100
	r.admitted(reports.BudgetSpend{Allowance: eb.Allowance(), RemainingAtStart: &left})
	if left < float64(eb.MaxSpend) {
		r.setVerdictCause(reports.Refused, causeErrorBudget, fmt.Sprintf("refusing to start: %.2f%% of the error budget is left, less than the %v%% this experiment may spend; nothing was injected", left, float64(eb.MaxSpend)))
		return false
	}
	r.event(reports.EventPhase, "errorBudget", true, fmt.Sprintf("admitted: %.2f%% of the error budget is left; this experiment may spend %v%% (%s)", left, float64(eb.MaxSpend), eb.Allowance()), nil)
	return true
}

// claimTargets refuses a run whose targets still carry faults a dead run
// left (the ledger has open entries for them) and takes the target locks.
func (r *run) claimTargets() bool {
	// The blast radius was decided on the resolved things (resolveTargets).
	keys := r.targetKeys()
	if r.opts.LockTargets != nil {
		unlock, err := r.opts.LockTargets(keys, r.runID())
		if err != nil {
			cause, refused := refusal(err)
			switch {
			case errors.Is(err, safety.ErrTargetLocked):
				r.setVerdictCause(reports.Refused, causeTargetLocked, "refusing to start: "+err.Error()+"; nothing was touched")
			case refused:
				r.setVerdictCause(reports.Refused, cause, "refusing to start: take the target locks: "+err.Error()+"; nothing was touched")
			default:
				r.setVerdictCause(reports.Error, causeStateFailed, "take the target locks: "+err.Error())
			}
			return false
		}
		r.unlock = unlock
	}
	return r.ledgerClear(keys)
}

// ledgerClear refuses a run whose targets still carry faults a dead run
// left (open ledger entries), or whose ledger holds a file that cannot be
// read: it may be a fault on one of these targets.
func (r *run) ledgerClear(keys []string) bool {
	if r.opts.Ledger == nil {
		return true
	}
	open, err := r.opts.Ledger.OpenFor(keys)
	switch {
	case errors.Is(err, safety.ErrCorruptEntry):
		r.setVerdictCause(reports.Refused, causeLedgerUnreadable, "refusing to start: "+err.Error())
		return false
	case err != nil:
		r.setVerdictCause(reports.Error, causeStateFailed, "read the ledger: "+err.Error())
		return false
	case len(open) > 0:
		var ids []string
		for _, e := range open {
			ids = append(ids, fmt.Sprintf("%s (%s on %s)", e.ID, e.Plugin, e.TargetKey))
		}
		r.setVerdictCause(reports.Refused, causeLedgerOpen, fmt.Sprintf("refusing to start: the ledger has faults on these targets that were never confirmed reverted: %s; run `chaos recover` first", strings.Join(ids, ", ")))
		return false
	}
	return true
}

// targetKeys are the keys of the things the faults act on, as their
// plugins resolved them, and of what those cover, sorted and unique: what
// locks and the ledger know targets by.
func (r *run) targetKeys() []string {
	seen := map[string]bool{}
	var keys []string
	for _, fl := range r.faults {
		_, all := r.resolvedKeys(fl.spec.Plugin, fl.req.Target)
		for _, k := range all {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// plugin opens a plugin once per run and checks it can do what is asked.
func (r *run) plugin(ctx context.Context, name string) (FaultPlugin, error) {
	if p, ok := r.plugins[name]; ok {
		return p, nil
	}
	p, err := r.opts.Plugins.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	r.plugins[name] = p
	d, err := p.Describe(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe: %w", err)
	}
	r.descs[name] = d
	return p, nil
}

// request builds the plugin request for a fault from the file.
func (r *run) request(f *experiments.Fault) sdk.Request {
	// The plugin's request is where secret parameters are revealed: a
	// Secret marshals as ***.
	params, err := json.Marshal(experiments.RevealParams(f.With))
	if err != nil || f.With == nil {
		// Load decoded With from YAML, so it always encodes; an empty
		// object is what a plugin expects for no parameters.
		params = []byte("{}")
	}
	return sdk.Request{RunID: r.runID(), Target: pluginTarget(f.Target, r.exp.Spec.Targets[f.Target]), Params: params}
}

// steadyState observes every probe once, concurrently, and evaluates the
// steady-state expressions. It returns whether all held.
func (r *run) steadyState(ctx context.Context, phase reports.Phase) bool {
	var wg sync.WaitGroup
	results := make(chan observation, len(r.probers))
	for name, p := range r.probers {
		wg.Go(func() {
			if o, ok := r.observe(ctx, name, p); ok {
				results <- o
			}
		})
	}
	wg.Wait()
	close(results)
	for o := range results {
		r.recordObservation(o)
	}
	return r.evaluateSteady(ctx, phase)
}

// observe runs one probe with its timeout. ok is false when the run itself
// was cancelled meanwhile: that is not the service's failure, so it is not
// recorded as one.
func (r *run) observe(ctx context.Context, name string, p Prober) (observation, bool) {
	spec := r.exp.Spec.Probes[name]
	started := r.opts.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	o := p.Probe(pctx)
	if ctx.Err() != nil {
		return observation{}, false
	}
	at := r.opts.Clock.Now()
	waited := at.Sub(started)
	switch {
	case o == nil:
		o = spec.FailedObservation("the probe returned nothing")
	case !o.Succeeded() && errors.Is(pctx.Err(), context.DeadlineExceeded):
		// Say the timeout plainly, whatever the transport called it.
		o = spec.FailedObservation(fmt.Sprintf("timed out after %s", spec.Timeout))
		waited = max(waited, spec.Timeout)
	}
	// An observation that could not be made took the time it was waited
	// for: a service that stopped answering is slow, and its latency must
	// trip a latency budget (DESIGN.md, "timed-out latency").
	o = experiments.WithWaited(o, waited)
	return observation{probe: name, started: started, at: at, obs: o}, true
}

func (r *run) recordObservation(o observation) {
	r.latest[o.probe] = o.obs
	r.history.Add(o.probe, o.at, o.obs)
	r.windows.observe(o.probe, o.started, o.at)
	// An event is not OK when the observation counts as a failure, as the
	// history functions and the error budget count it: could not observe,
	// a 5xx, a non-zero exit. The report's failure counts are these.
	failed := experiments.Failed(o.obs)
	msg := ""
	switch {
	case !o.obs.Succeeded():
		msg = o.obs.Failure()
	case failed:
		msg = "observed, and counts as a failure"
	}
	r.eventAt(o.at, reports.EventProbe, o.probe, !failed, msg, o.obs.Values())
}

// evaluateSteady evaluates every steady-state expression against the
// latest observations and records the result under phase. The evaluation
// is bounded (see bounded): one that is stuck, or exceeds its memory
// budget, records nothing, sets r.stuck and does not hold.
func (r *run) evaluateSteady(ctx context.Context, phase reports.Phase) bool {
	xs := r.exp.Spec.SteadyState
	type result struct {
		held   bool
		detail string
	}
	results := make([]result, len(xs))
	// The evaluation reads a copy of the latest observations: one that is
	// abandoned as stuck may go on reading while the run records more.
	latest, now := maps.Clone(r.latest), r.opts.Clock.Now()
	if err := r.bounded(ctx, func() {
		for i, x := range xs {
			results[i].held, results[i].detail = r.evaluate(latest, now, x)
		}
	}); err != nil {
		return false
	}
	if r.overrun != nil {
		r.stuck = r.overrun
		return false
	}
	all := true
	for i, x := range xs {
		held, detail := results[i].held, results[i].detail
		r.recordCheck(phase, i, x, held, detail)
		if !held {
			all = false
		}
		if phase == reports.During {
			if !held && !r.breached[i] {
				r.event(reports.EventDeviation, "steadyState", false, fmt.Sprintf("%s did not hold: %s", x.Source, detail), r.valuesFor(x))
			}
			r.breached[i] = !held
		}
	}
	return all
}

// evaluate runs one expression. An expression that reads a probe which
// could not observe does not hold, whatever it says: a timeout is never a
// pass.
func (r *run) evaluate(latest map[string]experiments.Observation, now time.Time, x *experiments.Expression) (bool, string) {
	for _, name := range x.Probes() {
		o, ok := latest[name]
		if !ok {
			return false, fmt.Sprintf("probe %s has not observed anything yet", name)
		}
		if !o.Succeeded() {
			return false, fmt.Sprintf("probe %s failed: %s", name, o.Failure())
		}
	}
	held, err := x.Eval(latest, r.history, now)
	if ne := (*experiments.NotObservedError)(nil); errors.As(err, &ne) {
		// A missing value is no evidence of health: not held, and the
		// message says how to accept it explicitly.
		return false, fmt.Sprintf("%s, so the expression does not hold; %s", ne, ne.Hint())
	}
	if err != nil {
		if errors.Is(err, experiments.ErrMemoryBudget) && r.overrun == nil {
			r.overrun = fmt.Errorf("steadyState %s: %w", x.Source, err)
		}
		return false, "cannot be judged yet: " + err.Error()
	}
	if held {
		return true, ""
	}
	return false, describeValues(valuesIn(latest, x))
}

// valuesFor collects the values of the probes an expression reads.
func (r *run) valuesFor(x *experiments.Expression) map[string]any { return valuesIn(r.latest, x) }

// valuesIn collects the values, in latest, of the probes x reads.
func valuesIn(latest map[string]experiments.Observation, x *experiments.Expression) map[string]any {
	v := map[string]any{}
	for _, name := range append(x.Probes(), x.HistoryProbes()...) {
		if o, ok := latest[name]; ok {
			v[name] = o.Values()
		}
	}
	return v
}

func describeValues(v map[string]any) string {
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		fields, _ := v[n].(map[string]any)
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		kv := make([]string, 0, len(keys))
		for _, k := range keys {
			kv = append(kv, fmt.Sprintf("%s=%v", k, fields[k]))
		}
		parts = append(parts, n+"{"+strings.Join(kv, " ")+"}")
	}
	return "observed " + strings.Join(parts, ", ")
}

// passedReason counts only the checks on observations made while a fault
// was certainly live (window.go): those are the ones that tested the
// hypothesis.
func (r *run) passedReason() string {
	return fmt.Sprintf("every steady-state expression held before the faults, in %d checks while they were live, and after they were reverted", r.windows.inWindowChecks())
}

// abortedBy sets the verdict for a run whose context ended.
func (r *run) abortedBy(ctx context.Context) {
	cause := context.Cause(ctx)
	r.event(reports.EventAbort, "safety", false, "run stopped: "+cause.Error(), nil)
	r.setVerdictCause(reports.Aborted, stopCause(cause), "the run was stopped: "+cause.Error()+"; every fault was reverted")
}

// stopCause names why the run's context ended: the cap, the operator, the
// kill switch, or a caller's own reason.
func stopCause(err error) reports.Cause {
	switch {
	case errors.Is(err, ErrMaxDuration):
		return causeMaxDuration
	case errors.Is(err, ErrInterrupted):
		return causeInterrupted
	case errors.Is(err, safety.ErrKillSwitch):
		return causeKillSwitch
	}
	return causeStopped
}

// setVerdictCause sets the verdict with its typed cause (recorder.decide).
func (r *run) setVerdictCause(v reports.Verdict, cause reports.Cause, reason string) {
	r.decide(v, cause, reason)
}

// finish seals the record. Values from the file print secrets as ***, but
// a plugin's error or a client library's message may echo one, escaped or
// cut short: none may reach a report.
func (r *run) finish() *reports.Record {
	var redact func(string) string
	if secrets := r.exp.Secrets(); len(secrets) > 0 {
		redact = experiments.NewRedactor(secrets).Redact
	}
	return r.seal(redact)
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// deadline is context.WithTimeoutCause on the run's clock: maxDuration is
// a schedule, so a test's fake clock must be able to reach it.
func (r *run) deadline(parent context.Context, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := r.opts.Clock.NewTimer(d)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-t.C():
			cancel(cause)
		case <-done:
		case <-ctx.Done():
		}
	})
	return ctx, func() {
		t.Stop()
		close(done)
		wg.Wait()
		cancel(nil)
	}
}
