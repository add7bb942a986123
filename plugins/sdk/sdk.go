// Package sdk is the whole contract between the chaos runner and a fault
// plugin: the handshake, the Fault interface a plugin implements, the gRPC
// adapters on both sides, Serve for a plugin's main, and Launch for the host.
//
// A plugin is a separate process (hashicorp/go-plugin over gRPC with
// AutoMTLS), so a plugin that crashes cannot take the runner down, and the
// runner that crashes leaves a plugin that reverts what it injected. This
// package must never import the engine or any fault: it is the contract and
// nothing else.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/hashicorp/go-plugin"
)

// ProtocolVersion is the version of the plugin protocol. A host and a plugin
// that disagree refuse each other at the handshake.
const ProtocolVersion = 1

// pluginName is the key of the one plugin a plugin process serves.
const pluginName = "fault"

// Handshake returns the handshake a host and a plugin must agree on. The
// magic cookie only keeps a plugin binary from being run by hand by mistake;
// it is not a security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "CHAOS_FAULT_PLUGIN",
		MagicCookieValue: "b3b5d5f2-4a59-4f0e-9d59-2c1c8b4c1a11",
	}
}

// Errors the host side returns.
var (
	// ErrPluginExited means the plugin process is gone: whatever it had
	// injected in its own process is gone with it, and whatever it had
	// injected outside (a kernel rule) may still be there.
	ErrPluginExited = errors.New("plugin process exited")
	// ErrInvalidParams means Validate found problems with the parameters.
	ErrInvalidParams = errors.New("invalid fault parameters")
	// ErrUnknownHandle means a handle names nothing the plugin knows.
	ErrUnknownHandle = errors.New("unknown handle")
	// ErrPluginPanicked means code of the plugin panicked (a handler, or a
	// goroutine the fault started under Guard). The SDK recovered it,
	// reverted everything the plugin held, and refuses new faults from that
	// process: its state can no longer be trusted.
	ErrPluginPanicked = errors.New("plugin panicked")
	// ErrMessageTooLarge means a request or an answer was larger than the
	// plugin protocol carries (MaxMessageBytes).
	ErrMessageTooLarge = errors.New("plugin message too large")
	// ErrRefused means the environment said no before the plugin touched
	// anything (its listen address is in use, say): the run is refused, not
	// broken. A plugin wraps it in the error it returns; it crosses the
	// wire as FailedPrecondition.
	ErrRefused = errors.New("refused by the environment")
)

// Target is a resolved target, as the runner hands it to a plugin. Exactly
// one of the kind fields is set, matching Kind.
type Target struct {
	// Name is the target's name in the experiment file.
	Name     string          `json:"name"`
	Kind     string          `json:"kind"`
	Endpoint *EndpointTarget `json:"endpoint,omitempty"`
}

// EndpointTarget is a network path: clients talk to Listen, the service
// answers on Upstream.
type EndpointTarget struct {
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
}

// Target kinds.
const (
	KindEndpoint = "endpoint"
)

// Request asks a plugin to check, prepare or inject one fault.
type Request struct {
	RunID  string
	Target Target
	// Params are the fault's `with` parameters as JSON.
	Params json.RawMessage
	// Prepared is the handle Prepare returned for this target, if any.
	Prepared string
	// LeaseTTL is how long the handle lives unless renewed; the plugin
	// reverts it by itself when the lease runs out. Zero: no lease.
	LeaseTTL time.Duration
}

// Description is what a plugin says about itself.
type Description struct {
	Name    string
	Version string
	Summary string
	// ParamsSchema is a JSON Schema of the `with` parameters.
	ParamsSchema json.RawMessage
	TargetKinds  []string
	// CanPrepare is true when the plugin implements Preparer.
	CanPrepare bool
}

// ParamProblem is one thing wrong with a fault's parameters.
type ParamProblem struct {
	Param   string
	Message string
}

// Status says whether what a handle names is in effect.
type Status struct {
	Active bool
	Detail string
}

// Fault is what a fault plugin implements. Inject must not return before
// the fault is in effect, and Revert must not return before it is gone.
// Every method honours its context.
type Fault interface {
	// Describe names the plugin and its parameters. It must not fail.
	Describe() Description
	// Validate checks a request without touching anything.
	Validate(ctx context.Context, req Request) []ParamProblem
	// Inject starts the fault and returns a handle that names it.
	Inject(ctx context.Context, req Request) (handle string, err error)
	// Revert ends what handle names. Reverting a handle that is no longer
	// in effect is not an error; wasActive says which it was.
	Revert(ctx context.Context, handle string) (wasActive bool, err error)
}

// Preparer is the optional ability to ready a target before the steady
// state is checked, so that the steady state and the fault see the same path
// (a proxy that passes traffic unchanged until the fault adds delay). The
// handle it returns is reverted like any other when the run ends.
type Preparer interface {
	Prepare(ctx context.Context, req Request) (handle string, err error)
}

// StatusReporter is the optional ability to say whether a handle is still in
// effect.
type StatusReporter interface {
	Status(ctx context.Context, handle string) (Status, error)
}
