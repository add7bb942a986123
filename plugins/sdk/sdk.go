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
	// ErrHandleMismatch means a revert named a handle and an id that are
	// not one injection.
	ErrHandleMismatch = errors.New("handle and id name different injections")
	// ErrMessageTooLarge means a request or an answer was larger than the
	// plugin protocol carries (MaxMessageBytes).
	ErrMessageTooLarge = errors.New("plugin message too large")
	// ErrRefused means the environment said no before the plugin touched
	// anything (its listen address is in use, say): the run is refused, not
	// broken. A plugin wraps it in the error it returns; it crosses the
	// wire as FailedPrecondition.
	ErrRefused = errors.New("refused by the environment")
)

// Target is a target as the experiment file states it, as the runner hands
// it to a plugin. Exactly one of the kind fields is set, matching Kind. Every
// kind of the file format is carried, so a plugin for a new kind needs no
// change to the runner; which concrete things a target means now is the
// plugin's answer to Resolve.
type Target struct {
	// Name is the target's name in the experiment file.
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	Endpoint   *EndpointTarget   `json:"endpoint,omitempty"`
	Kubernetes *KubernetesTarget `json:"kubernetes,omitempty"`
	Host       *HostTarget       `json:"host,omitempty"`
	Process    *ProcessTarget    `json:"process,omitempty"`
}

// EndpointTarget is a network path: clients talk to Listen, the service
// answers on Upstream.
type EndpointTarget struct {
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
}

// KubernetesTarget is a set of pods: those in Namespace matching Selector,
// of which Pick chooses some when the target is resolved.
type KubernetesTarget struct {
	Namespace string `json:"namespace"`
	Selector  string `json:"selector"`
	Pick      Pick   `json:"pick"`
}

// Pick says how many of the matching pods a fault acts on; exactly one of
// its fields is set.
type Pick struct {
	Count int `json:"count,omitempty"`
	// Percent is a share of the matching pods, 0 to 100, rounded up.
	Percent float64 `json:"percent,omitempty"`
	All     bool    `json:"all,omitempty"`
}

// HostTarget is the machine the runner (and the plugin) runs on.
type HostTarget struct{}

// ProcessTarget is a process on the machine, by exactly one of PID, Name
// (as in /proc/PID/comm) or Cgroup (a cgroup v2 path).
type ProcessTarget struct {
	PID    int    `json:"pid,omitempty"`
	Name   string `json:"name,omitempty"`
	Cgroup string `json:"cgroup,omitempty"`
}

// Target kinds.
const (
	KindEndpoint   = "endpoint"
	KindKubernetes = "kubernetes"
	KindHost       = "host"
	KindProcess    = "process"
)

// Resolved is one concrete thing a target means now.
type Resolved struct {
	// Key is stable and the same for two names of one thing
	// ("endpoint:127.0.0.1:18082" for a proxy's resolved listen address;
	// "pod:<uid>"; "process:<pid>:<start time>"): locks, blast radius and
	// the ledger act on it.
	Key string
	// Kind is the kind of thing: endpoint, pod, process, host.
	Kind string
	// Name is for people: "127.0.0.1:18082", "shop/checkout-7d9f".
	Name string
	// Covers are keys of other things this one overlaps, which a run on
	// them must not fault at the same time (a wildcard listener covers every
	// local address on its port). Locks are taken on Key and Covers.
	Covers []string
}

// Resolution is what a target means now.
type Resolution struct {
	Things []Resolved
	// Total is how many candidates Things were chosen from (pods matching a
	// selector), for a percentage limit; 0 when that does not apply.
	Total int
}

// DefaultResolution is the resolution of a plugin without the Resolver
// ability: the target itself, as one thing, keyed by what the file says.
func DefaultResolution(t Target) Resolution {
	key := t.Kind + ":" + t.Name
	name := t.Name
	if t.Endpoint != nil {
		key = "endpoint:" + t.Endpoint.Listen
		name = t.Endpoint.Listen
	}
	return Resolution{Things: []Resolved{{Key: key, Kind: t.Kind, Name: name}}}
}

// Request asks a plugin to check, prepare or inject one fault.
type Request struct {
	RunID string
	// ID names this injection (or preparation) for good: it is the ledger
	// entry's id, and Revert accepts it in place of the handle, in this
	// process or a fresh one.
	ID     string
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
	// CanResolve is true when the plugin implements Resolver.
	CanResolve bool
	// CanRevertByID is true when the plugin implements RevertByID: its
	// faults outlive its process, and it can undo one by id alone.
	CanRevertByID bool
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

// Resolver is the optional ability to say which concrete things a target
// means now (the pods a selector matches, the addresses a listener binds).
// A plugin without it is taken to act on the target as one thing
// (DefaultResolution). Resolve must not change anything.
type Resolver interface {
	Resolve(ctx context.Context, req Request) (Resolution, error)
}

// RevertByID is the optional ability to undo an injection by its id alone,
// with no memory of it: what a plugin whose faults outlive its process
// (nftables rules, netem qdiscs, cgroup membership, deleted pods) needs, so
// that a fresh process can revert what a dead one left (`chaos recover`
// with an entry whose handle was never recorded). Such a plugin marks what
// it changes with the id (a rule comment, a qdisc handle table, a label),
// so it can find it again. Undoing an id that names nothing is not an
// error; wasActive says which it was.
//
// A plugin whose faults live in its own process (the latency proxy) does
// not implement it: when that process is gone, so is the fault, and a fresh
// process rightly answers that it holds nothing for the id.
type RevertByID interface {
	RevertByID(ctx context.Context, id string) (wasActive bool, err error)
}

// StatusReporter is the optional ability to say whether a handle is still in
// effect.
type StatusReporter interface {
	Status(ctx context.Context, handle string) (Status, error)
}
