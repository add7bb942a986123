package experiments

import "strings"

// ProbeKind is what the format knows of one kind of probe: how a
// declaration says it, what it observes, how its settings are checked and
// how the dry-run plan describes it. Running a probe of the kind is package
// probes' business (its Builtin registry has a constructor per kind).
//
// Adding a kind is a field on Probe (its settings), an entry in probeKinds,
// an observation type, and a file in package probes with its registration.
type ProbeKind struct {
	// Name is the kind's key in a probe declaration ("http").
	Name string
	// set reports whether p declares this kind.
	set func(p *Probe) bool
	// zero is the kind's observation type, which expressions are
	// type-checked against before anything runs.
	zero Observation
	// failed is an observation of the kind that could not be made.
	failed func(reason string) Observation
	// validate checks the kind's settings; path is the probe's
	// (spec.probes.NAME).
	validate func(c checker, path string, p *Probe)
	// describe says what the probe observes, for the plan. Credentials
	// (headers, auth, env) are never printed.
	describe func(p *Probe) string
}

// probeKinds is the table of probe kinds, in the order the format lists
// them (ProbeKinds). It is a function so that the table cannot be changed
// by anyone: every caller gets its own.
func probeKinds() []ProbeKind {
	return []ProbeKind{
		{
			Name: ProbeHTTP, set: func(p *Probe) bool { return p.HTTP != nil },
			zero:   HTTPObservation{},
			failed: func(r string) Observation { return HTTPObservation{Error: r} },
			validate: func(c checker, path string, p *Probe) {
				validateHTTPProbe(c, path+".http", p.HTTP)
			},
			describe: func(p *Probe) string { return "http " + p.HTTP.Method + " " + p.HTTP.URL.String() },
		},
		{
			Name: ProbeTCP, set: func(p *Probe) bool { return p.TCP != nil },
			zero:   TCPObservation{},
			failed: func(r string) Observation { return TCPObservation{Error: r} },
			validate: func(c checker, path string, p *Probe) {
				checkHostPort(c, path+".tcp.address", p.TCP.Address)
			},
			describe: func(p *Probe) string { return "tcp connect to " + p.TCP.Address },
		},
		{
			Name: ProbePrometheus, set: func(p *Probe) bool { return p.Prometheus != nil },
			zero:   PrometheusObservation{},
			failed: func(r string) Observation { return PrometheusObservation{Error: r, Empty: true} },
			validate: func(c checker, path string, p *Probe) {
				validatePrometheusProbe(c, path+".prometheus", p.Prometheus)
			},
			describe: func(p *Probe) string {
				return "prometheus " + p.Prometheus.URL.String() + " query " + p.Prometheus.Query
			},
		},
		{
			Name: ProbeKubernetes, set: func(p *Probe) bool { return p.Kubernetes != nil },
			zero:     KubernetesObservation{},
			failed:   func(r string) Observation { return KubernetesObservation{Error: r} },
			validate: validateKubernetesProbe,
			describe: func(p *Probe) string { return "kubernetes " + p.Kubernetes.Describe() },
		},
		{
			Name: ProbeExec, set: func(p *Probe) bool { return p.Exec != nil },
			zero:     ExecObservation{},
			failed:   func(r string) Observation { return ExecObservation{Error: r, ExitCode: -1} },
			validate: validateExecProbe,
			describe: func(p *Probe) string { return "exec " + strings.Join(p.Exec.Command, " ") },
		},
	}
}

// kind is the entry of the probe's kind (the first set, in table order),
// and false for a probe with none.
func (p *Probe) kind() (ProbeKind, bool) {
	for _, k := range probeKinds() {
		if k.set(p) {
			return k, true
		}
	}
	return ProbeKind{}, false
}

// Describe says what the probe observes, whatever its kind, for the dry-run
// plan. Credentials (headers, auth, exec env) are not printed.
func (p *Probe) Describe() string {
	if k, ok := p.kind(); ok {
		return k.describe(p)
	}
	return "of no kind"
}
