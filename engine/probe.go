package engine

import (
	"context"
	"fmt"

	"github.com/chaos-run/chaos/experiments"
)

// NewProber builds the prober for one declared probe. Adding a probe kind
// is one file with a constructor and a Probe method, plus a case here.
func NewProber(name string, p *experiments.Probe) (Prober, error) {
	var pr Prober
	var err error
	switch p.Kind() {
	case experiments.ProbeHTTP:
		pr, err = newHTTPProber(p.HTTP)
	case experiments.ProbeTCP:
		pr = newTCPProber(p.TCP)
	case experiments.ProbePrometheus:
		pr, err = newPrometheusProber(p.Prometheus)
	case experiments.ProbeExec:
		pr = newExecProber(p.Exec)
	case experiments.ProbeKubernetes:
		// The declaration is part of the format; reading a Deployment needs
		// the Kubernetes connection, which comes with the podkill work.
		return nil, fmt.Errorf("probe %s: kubernetes probes cannot run yet in this version; nothing was injected", name)
	default:
		return nil, fmt.Errorf("probe %s: no probe kind set", name)
	}
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

// retrying gives an observation that could not be made (a refused
// connection, a timeout of one attempt) more attempts within the same
// deadline. An observation that was made is never retried: a 503 is the
// answer, and retrying it would hide the failure the experiment looks for.
type retrying struct {
	p       Prober
	retries int
}

// Close passes Close on to the prober it wraps.
func (r retrying) Close() { closeProber(r.p) }

// closeProber releases what a prober holds (idle connections), if it holds
// anything: a run inside a long-lived process must not leave them behind.
func closeProber(p Prober) {
	if c, ok := p.(interface{ Close() }); ok {
		c.Close()
	}
}

func (r retrying) Probe(ctx context.Context) experiments.Observation {
	o := r.p.Probe(ctx)
	for i := 0; i < r.retries && o != nil && !o.Succeeded() && ctx.Err() == nil; i++ {
		o = r.p.Probe(ctx)
	}
	return o
}
