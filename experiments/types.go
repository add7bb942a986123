// Package experiments is the experiment file format: its types, strict
// parsing that reports every problem with file, line and column, validation,
// and the typed environment that steady-state and budget expressions are
// compiled against.
//
// It has no runtime in it: nothing here probes, injects or sleeps. A file
// that Load accepts is one the engine can run without discovering a typo
// halfway through an experiment.
package experiments

import (
	"time"
)

// APIVersion and KindExperiment are the envelope of a v1 experiment file.
const (
	APIVersion     = "chaos/v1"
	KindExperiment = "Experiment"
)

// Experiment is one experiment file.
type Experiment struct {
	Pos        Pos      `yaml:"-"`
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// File is the path the experiment was read from, for messages.
	File string `yaml:"-"`
}

// Metadata names the experiment and the team that owns it.
type Metadata struct {
	Pos    Pos               `yaml:"-"`
	Name   string            `yaml:"name"`
	Owner  Owner             `yaml:"owner"`
	Labels map[string]string `yaml:"labels"`
}

// Owner is who the report is addressed to.
type Owner struct {
	Pos     Pos    `yaml:"-"`
	Team    string `yaml:"team"`
	Email   string `yaml:"email"`
	Webhook string `yaml:"webhook"`
}

// Spec is what the experiment does.
type Spec struct {
	Pos        Pos    `yaml:"-"`
	Hypothesis string `yaml:"hypothesis"`
	// Targets and Probes are keyed by the name expressions and faults use.
	Targets     map[string]*Target `yaml:"targets"`
	Probes      map[string]*Probe  `yaml:"probes"`
	SteadyState []*Expression      `yaml:"steadyState"`
	Faults      []*Fault           `yaml:"faults"`
	Budget      Budget             `yaml:"budget"`
	Safety      Safety             `yaml:"safety"`
}

// Target is something a fault acts on. Exactly one kind is set.
type Target struct {
	Pos      Pos             `yaml:"-"`
	Endpoint *EndpointTarget `yaml:"endpoint"`
}

// EndpointTarget is a network path: clients connect to Listen, the service
// answers on Upstream. Both are host:port.
type EndpointTarget struct {
	Pos      Pos    `yaml:"-"`
	Listen   string `yaml:"listen"`
	Upstream string `yaml:"upstream"`
}

// Probe observes the system. Exactly one kind is set.
type Probe struct {
	Pos Pos `yaml:"-"`
	// Every is the interval between observations while faults are live.
	Every time.Duration `yaml:"every"`
	// Timeout bounds one observation; an observation that runs out of time
	// is a failure.
	Timeout time.Duration `yaml:"timeout"`
	HTTP    *HTTPProbe    `yaml:"http"`
}

// Default probe timing, used when the file says nothing.
const (
	DefaultProbeEvery   = time.Second
	DefaultProbeTimeout = 2 * time.Second
)

// HTTPProbe sends one request and observes the answer.
type HTTPProbe struct {
	Pos     Pos               `yaml:"-"`
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`
}

// Fault is one fault to inject.
type Fault struct {
	Pos    Pos    `yaml:"-"`
	Plugin string `yaml:"plugin"`
	Target string `yaml:"target"`
	// With are the plugin's own parameters; the plugin checks them.
	With map[string]any `yaml:"with"`
	// After is when the fault starts, from the start of the fault phase.
	After time.Duration `yaml:"after"`
	// For is how long it lasts; zero means until the fault phase ends.
	For time.Duration `yaml:"for"`
}

// Budget says when the experiment must stop early.
type Budget struct {
	Pos Pos `yaml:"-"`
	// AbortWhen expressions are checked on every new observation while
	// faults are live; the first that holds aborts the run.
	AbortWhen []*Expression `yaml:"abortWhen"`
}

// Safety holds the guardrails of a run.
type Safety struct {
	Pos Pos `yaml:"-"`
	// MaxDuration is the hard cap on the whole run; past it the run aborts
	// and reverts. Zero means DefaultMaxDuration.
	MaxDuration time.Duration `yaml:"maxDuration"`
}

// DefaultMaxDuration caps a run whose file sets no maxDuration.
const DefaultMaxDuration = 10 * time.Minute

// FaultPhase is how long the fault phase lasts: until the last scheduled
// fault ends.
func (s *Spec) FaultPhase() time.Duration {
	var end time.Duration
	for _, f := range s.Faults {
		if e := f.After + f.For; e > end {
			end = e
		}
	}
	return end
}

// EffectiveMaxDuration is MaxDuration with its default applied.
func (s Safety) EffectiveMaxDuration() time.Duration {
	if s.MaxDuration == 0 {
		return DefaultMaxDuration
	}
	return s.MaxDuration
}
