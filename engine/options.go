// Package engine runs one experiment: it checks the steady state, injects
// faults through out-of-process plugins on their schedule, keeps probing
// while they are live, reverts every fault on every path, checks the steady
// state again and decides the verdict.
//
// The engine never imports a fault's client library (client-go, netlink):
// faults are plugins behind plugins/sdk. It never calls os.Exit, and a revert
// never runs under a context that the abort which triggered it can cancel.
package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/safety"
)

// Errors that end a run early; they are the causes of the run's context.
var (
	// ErrMaxDuration means the run reached safety.maxDuration.
	ErrMaxDuration = errors.New("maxDuration reached")
	// ErrInterrupted means the operator asked the run to stop (Ctrl-C).
	ErrInterrupted = errors.New("interrupted")
	// ErrEvaluationStuck means a steady-state or budget expression did not
	// finish within Options.EvalTimeout: the run cannot judge what it sees,
	// so it aborts without waiting for it.
	ErrEvaluationStuck = errors.New("expression evaluation did not finish in time")
	// ErrLeaseLost means a hold's lease could not be renewed for a whole
	// TTL: the plugin has reverted it by itself, or is not answering.
	ErrLeaseLost = errors.New("lease lost")
	// ErrPluginNotAnswering means a plugin's renewals timed out until its
	// lease ran out: the run stops asking it anything and kills it.
	ErrPluginNotAnswering = errors.New("plugin not answering")
)

// Clock tells the time. The engine asks it for the time and for timers
// (schedules, probe intervals, leases, maxDuration), so that tests drive
// time themselves with clock.Fake; the engine never reads the wall clock.
type Clock = clock.Clock

// Timer is the part of *time.Timer the engine uses.
type Timer = clock.Timer

// Prober observes one probe once. It must return by the time ctx is done.
type Prober interface {
	Probe(ctx context.Context) experiments.Observation
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context) experiments.Observation

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context) experiments.Observation { return f(ctx) }

// FaultPlugin is one open plugin, as the engine uses it.
type FaultPlugin interface {
	Describe(ctx context.Context) (sdk.Description, error)
	Validate(ctx context.Context, req sdk.Request) ([]sdk.ParamProblem, error)
	Prepare(ctx context.Context, req sdk.Request) (string, error)
	Inject(ctx context.Context, req sdk.Request) (string, error)
	Revert(ctx context.Context, handle string) (bool, error)
	Renew(ctx context.Context, handle string, ttl time.Duration) error
	// Done is closed when the plugin process dies on its own.
	Done() <-chan struct{}
	// Pid is the plugin's process id; 0 when it is not a process of its own.
	Pid() int
	// Close ends the plugin; anything it still holds it reverts.
	Close()
}

// Ledger records every fault before it is injected, so that `chaos
// recover` can revert what a killed runner left. *safety.Ledger is the one
// the CLI uses.
type Ledger interface {
	Intend(e safety.Entry) error
	Injected(id, handle string) error
	Reverted(id string) error
	Note(id, note string) error
	// OpenFor returns the entries not yet reverted for these target keys.
	OpenFor(targetKeys []string) ([]safety.Entry, error)
}

// Plugins opens plugins by name.
type Plugins interface {
	Open(ctx context.Context, name string) (FaultPlugin, error)
}

// Options configure a run. Only Plugins is required; every other zero value
// has the default its comment gives.
type Options struct {
	Plugins Plugins
	// Clock defaults to the real clock.
	Clock Clock
	// Log defaults to discarding.
	Log *slog.Logger
	// RunID defaults to one made from the start time.
	RunID string
	// NewProber builds a prober for a probe; it defaults to the built-in
	// probe kinds (probes.New). The CLI wires a probes.Registry here.
	NewProber func(name string, p *experiments.Probe) (Prober, error)
	// RevertTimeout bounds each revert. It defaults to 30s: a revert cut
	// short leaves a fault behind, so it is generous.
	RevertTimeout time.Duration
	// LeaseTTL is how long a plugin keeps a fault without hearing from the
	// run; the run renews at a third of it. It defaults to the file's
	// safety.leaseTTL, or 10s.
	LeaseTTL time.Duration
	// EvalTimeout bounds one evaluation of the steady-state or budget
	// expressions. It defaults to 1s (a quarter of LeaseTTL if that is
	// shorter), far above what an expression over a
	// few observations takes; one that takes longer aborts the run
	// (ErrEvaluationStuck), and nothing waits for it to return.
	EvalTimeout time.Duration
	// Ledger records faults before they are injected. Nil means no ledger,
	// which only tests should want: the CLI always gives one.
	Ledger Ledger
	// BudgetEvery, when set, checks the budget on a ticker at this interval
	// instead of on every new observation. It exists to measure how much
	// later a polling loop (Chaos Toolkit's way) gets to safety; leave it
	// zero.
	BudgetEvery time.Duration
	// LockTargets takes exclusive locks on the targets' keys for the run,
	// so two runs never fault one target. Nil takes no locks.
	LockTargets func(keys []string, runID string) (release func() error, err error)
	// Progress, when set, is told every event as it happens (the live
	// view); see Progress.
	Progress Progress
}

func (o *Options) defaults() {
	o.Clock = clock.Or(o.Clock)
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.NewProber == nil {
		o.NewProber = builtinProbers
	}
	if o.RevertTimeout == 0 {
		o.RevertTimeout = 30 * time.Second
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = defaultLeaseTTL
	}
	if o.EvalTimeout == 0 {
		// Well inside the heartbeat's half lease, so that a slow
		// evaluation is an abort before it could stop the renewals.
		o.EvalTimeout = min(time.Second, o.LeaseTTL/4)
	}
}

// ExecPlugins starts each plugin as its own process through plugins/sdk.
type ExecPlugins struct {
	// Command returns the command that serves the named plugin. Its
	// ExtraFiles are closed once the plugin has started.
	Command func(name string) (*exec.Cmd, error)
	// Log receives the plugins' log output; nil discards it.
	Log io.Writer
}

// Open starts the named plugin.
func (p ExecPlugins) Open(ctx context.Context, name string) (FaultPlugin, error) {
	cmd, err := p.Command(name)
	if err != nil {
		return nil, err
	}
	pl, err := sdk.Launch(ctx, cmd, sdk.LaunchOptions{Log: p.Log})
	// Files the command hands its process (an installed plugin's verified
	// binary, which it is started from) are the child's now.
	for _, f := range cmd.ExtraFiles {
		_ = f.Close()
	}
	if err != nil {
		return nil, err
	}
	return processPlugin{Client: pl.Fault, proc: pl}, nil
}

type processPlugin struct {
	*sdk.Client
	proc *sdk.Plugin
}

func (p processPlugin) Close()                { p.proc.Close() }
func (p processPlugin) Kill()                 { p.proc.Kill() }
func (p processPlugin) Done() <-chan struct{} { return p.proc.Done() }
func (p processPlugin) Pid() int              { return p.proc.Pid() }
