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
	"github.com/chaos-run/chaos/plugins/sdk"
)

// Errors that end a run early; they are the causes of the run's context.
var (
	// ErrMaxDuration means the run reached safety.maxDuration.
	ErrMaxDuration = errors.New("maxDuration reached")
	// ErrInterrupted means the operator asked the run to stop (Ctrl-C).
	ErrInterrupted = errors.New("interrupted")
)

// Clock tells the time. The engine asks it for the time and for timers, so
// that tests of schedules can drive time themselves.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the engine uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

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
	// Close ends the plugin; anything it still holds it reverts.
	Close()
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
	// probe kinds.
	NewProber func(name string, p *experiments.Probe) (Prober, error)
	// RevertTimeout bounds each revert. It defaults to 30s: a revert cut
	// short leaves a fault behind, so it is generous.
	RevertTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.NewProber == nil {
		o.NewProber = NewProber
	}
	if o.RevertTimeout == 0 {
		o.RevertTimeout = 30 * time.Second
	}
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer {
	return realTimer{time.NewTimer(d)}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// ExecPlugins starts each plugin as its own process through plugins/sdk.
type ExecPlugins struct {
	// Command returns the command that serves the named plugin.
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
	if err != nil {
		return nil, err
	}
	return processPlugin{Client: pl.Fault, proc: pl}, nil
}

type processPlugin struct {
	*sdk.Client
	proc *sdk.Plugin
}

func (p processPlugin) Close() { p.proc.Close() }
