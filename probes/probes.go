// Package probes runs the probes an experiment declares: one file per kind
// (http, tcp, prometheus, exec, kubernetes), each a constructor and a Probe
// method, registered in one table (Builtin). The engine sees only a
// prober's Probe method; the format of each kind (its settings, its
// observation type, its validation) lives in experiments.
//
// A prober observes once per call and never keeps state between calls that
// could make one observation depend on the last, with one exception that
// says so: the kubernetes probe remembers container restart counts, since
// restarts within a window cannot be read from one answer of the API. A
// prober must never inject anything.
package probes

import (
	"context"
	"errors"
	"fmt"

	"github.com/chaos-run/chaos/experiments"
)

// ErrNotAvailable is why a probe of a kind the format declares cannot run
// in this version.
var ErrNotAvailable = errors.New("probe kind not available in this version")

// Prober observes one probe once. It must return by the time ctx is done.
// engine.Prober is the same method set.
type Prober interface {
	Probe(ctx context.Context) experiments.Observation
}

// Constructor builds the prober of one declared probe of its kind. It may
// read files the probe names (TLS), so that a missing one is an error before
// anything is injected; it must not reach the network.
type Constructor func(p *experiments.Probe) (Prober, error)

// Registry is the table of probe kinds that can run, by experiments probe
// kind name. Adding a kind is a file in this package, an entry in
// experiments' kind table, and a line in Builtin.
type Registry map[string]Constructor

// Builtin is the registry of the kinds this version runs. A new value on
// every call: callers may add to theirs.
func Builtin() Registry {
	return Registry{
		experiments.ProbeHTTP:       newHTTPProber,
		experiments.ProbeTCP:        newTCPProber,
		experiments.ProbePrometheus: newPrometheusProber,
		experiments.ProbeKubernetes: newKubernetesProber,
		experiments.ProbeExec:       newExecProber,
	}
}

// New builds the prober for one declared probe with the built-in kinds.
func New(name string, p *experiments.Probe) (Prober, error) { return Builtin().New(name, p) }

// New builds the prober for one declared probe: the kind's constructor,
// then the probe's response cap and retries, which every kind shares.
func (r Registry) New(name string, p *experiments.Probe) (Prober, error) {
	kind := p.Kind()
	if kind == "" {
		return nil, fmt.Errorf("probe %s: no probe kind set", name)
	}
	build, ok := r[kind]
	if !ok {
		return nil, fmt.Errorf("probe %s: %s probes cannot run in this version: %w", name, kind, ErrNotAvailable)
	}
	pr, err := build(p)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", name, err)
	}
	if c, ok := pr.(responseCapper); ok {
		c.capResponse(p.EffectiveMaxResponse())
	}
	if p.Retries > 0 {
		pr = retrying{p: pr, retries: p.Retries}
	}
	return pr, nil
}

// Close releases what a prober holds (idle connections), if it holds
// anything: a run inside a long-lived process must not leave them behind.
func Close(p Prober) {
	if c, ok := p.(interface{ Close() }); ok {
		c.Close()
	}
}

// retrying gives an observation that could not be made (a refused
// connection, a timeout of one attempt) more attempts within the same
// deadline. An observation that was made is never retried: a 503 is the
// answer, and retrying it would hide the failure the experiment looks for.
type retrying struct {
	p       Prober
	retries int
}

// Close passes Close on to the prober it wraps.
func (r retrying) Close() { Close(r.p) }

func (r retrying) Probe(ctx context.Context) experiments.Observation {
	o := r.p.Probe(ctx)
	for i := 0; i < r.retries && o != nil && !o.Succeeded() && ctx.Err() == nil; i++ {
		o = r.p.Probe(ctx)
	}
	return o
}
