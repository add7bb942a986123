// Package experiments is the experiment file format: its types, strict
// parsing that reports every problem with file, line and column, validation,
// the typed environment that steady-state and budget expressions are
// compiled against, the probe history those expressions read, and the JSON
// Schema of the format.
//
// It has no runtime in it: nothing here probes, injects, sleeps or talks to
// a plugin. A file that Load accepts is one the engine can run without
// discovering a typo halfway through an experiment. The resolved values of
// `${env:NAME}` references are secrets: they are known to the Experiment
// (Secrets) and must never appear in any output (Redact).
package experiments

import (
	"math"
	"time"
)

// APIVersion and KindExperiment are the envelope of a v1 experiment file.
const (
	APIVersion     = "chaos/v1"
	KindExperiment = "Experiment"
)

// The struct tags below drive two things besides decoding: `doc`, `enum`,
// `default`, `required`, `min`, `max` and `oneof` annotate the JSON Schema
// (schema.go); validation (validate.go) says the same in its own words,
// with hints.

// Experiment is one experiment file.
type Experiment struct {
	Pos        Pos      `yaml:"-"`
	APIVersion string   `yaml:"apiVersion" required:"true" enum:"chaos/v1" doc:"The version of the format: chaos/v1."`
	Kind       string   `yaml:"kind" required:"true" enum:"Experiment" doc:"Always Experiment."`
	Metadata   Metadata `yaml:"metadata" required:"true" doc:"Who the experiment is and who owns it."`
	Spec       Spec     `yaml:"spec" required:"true" doc:"What the experiment does."`

	// File is the path the experiment was read from, for messages.
	File string `yaml:"-"`

	// secrets are the resolved values of ${env:NAME} references.
	secrets []string
	// positions holds where every value of the file stands, by path.
	positions map[string]FieldPos
}

// Metadata names the experiment and the team that owns it.
type Metadata struct {
	Pos    Pos               `yaml:"-"`
	Name   string            `yaml:"name" required:"true" doc:"A short name: lowercase letters, digits and '-', at most 63 characters. It names the reports."`
	Owner  Owner             `yaml:"owner" required:"true" doc:"The team the report is addressed to."`
	Labels map[string]string `yaml:"labels" doc:"Kubernetes-style labels, for selecting experiments."`
}

// Owner is who the report is addressed to.
type Owner struct {
	Pos     Pos    `yaml:"-"`
	Team    string `yaml:"team" required:"true" doc:"The owning team."`
	Email   string `yaml:"email" doc:"Where the team is reached by e-mail."`
	Webhook Secret `yaml:"webhook" doc:"A Slack-compatible webhook URL the team is told on; may hold ${env:NAME}."`
}

// Spec is what the experiment does.
type Spec struct {
	Pos        Pos    `yaml:"-"`
	Hypothesis string `yaml:"hypothesis" required:"true" doc:"What you expect to hold while the faults are live, in one or two sentences."`
	// Targets and Probes are keyed by the name expressions and faults use.
	Targets     map[string]*Target `yaml:"targets" required:"true" keys:"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$" doc:"What faults act on, by name."`
	Probes      map[string]*Probe  `yaml:"probes" required:"true" keys:"^[A-Za-z_][A-Za-z0-9_]*$" doc:"How the system is observed, by name. The name is what expressions read."`
	SteadyState []*Expression      `yaml:"steadyState" required:"true" doc:"Expressions that must hold before the faults, while they are live, and after the revert."`
	Faults      []*Fault           `yaml:"faults" required:"true" doc:"The faults to inject, on their schedule."`
	Budget      Budget             `yaml:"budget" doc:"When the experiment must stop early."`
	Safety      Safety             `yaml:"safety" doc:"Guardrails of the run."`
	Report      Report             `yaml:"report" doc:"Which reports to write and where to deliver them."`
}

// Target is something a fault acts on. Exactly one kind is set.
type Target struct {
	Pos        Pos               `yaml:"-"`
	Endpoint   *EndpointTarget   `yaml:"endpoint" oneof:"kind" doc:"A network path: clients connect to listen, the service answers on upstream."`
	Kubernetes *KubernetesTarget `yaml:"kubernetes" oneof:"kind" doc:"Pods chosen by namespace, label selector and pick mode."`
	Host       *HostTarget       `yaml:"host" oneof:"kind" nullable:"true" doc:"The machine chaos runs on: host: {}."`
	Process    *ProcessTarget    `yaml:"process" oneof:"kind" doc:"One process, by pid, name or cgroup."`
}

// Target kinds, as Kind returns them.
const (
	TargetEndpoint   = "endpoint"
	TargetKubernetes = "kubernetes"
	TargetHost       = "host"
	TargetProcess    = "process"
)

// TargetKinds are the target kinds, in the order the file format lists them.
var TargetKinds = []string{TargetEndpoint, TargetKubernetes, TargetHost, TargetProcess}

// Kind says which kind the target is; "" when none is set.
func (t *Target) Kind() string {
	switch {
	case t.Endpoint != nil:
		return TargetEndpoint
	case t.Kubernetes != nil:
		return TargetKubernetes
	case t.Host != nil:
		return TargetHost
	case t.Process != nil:
		return TargetProcess
	}
	return ""
}

// EndpointTarget is a network path: clients connect to Listen, the service
// answers on Upstream. Both are host:port.
type EndpointTarget struct {
	Pos      Pos    `yaml:"-"`
	Listen   string `yaml:"listen" required:"true" doc:"host:port clients connect to, e.g. 127.0.0.1:18080."`
	Upstream string `yaml:"upstream" required:"true" doc:"host:port the service answers on, e.g. 127.0.0.1:8080."`
}

// KubernetesTarget is a set of pods: those in Namespace matching Selector,
// of which Pick chooses some at run time.
type KubernetesTarget struct {
	Pos       Pos    `yaml:"-"`
	Namespace string `yaml:"namespace" required:"true" doc:"The namespace of the pods."`
	Selector  string `yaml:"selector" required:"true" doc:"A label selector, e.g. app=checkout,tier!=canary."`
	Pick      Pick   `yaml:"pick" doc:"How many of the matching pods are faulted; defaults to {count: 1}."`
}

// Pick says how many of the matching pods a fault acts on. Exactly one mode
// is set; a file that sets none gets Count 1, the smallest blast radius.
type Pick struct {
	Pos     Pos     `yaml:"-"`
	Count   int     `yaml:"count" oneof:"mode?" min:"1" doc:"This many pods, chosen at random."`
	Percent Percent `yaml:"percent" oneof:"mode?" doc:"This share of the pods, rounded up, e.g. 25%."`
	All     bool    `yaml:"all" oneof:"mode?" doc:"Every matching pod. safety.maxTargets and maxPercent still apply."`
}

// HostTarget is the machine chaos runs on. It has no fields: `host: {}`.
type HostTarget struct {
	Pos Pos `yaml:"-"`
}

// ProcessTarget is one process on the machine chaos runs on, found by
// exactly one of PID, Name or Cgroup.
type ProcessTarget struct {
	Pos    Pos    `yaml:"-"`
	PID    int    `yaml:"pid" oneof:"by" min:"1" doc:"The process id."`
	Name   string `yaml:"name" oneof:"by" doc:"The process name (as in /proc/PID/comm); exactly one process must match."`
	Cgroup string `yaml:"cgroup" oneof:"by" doc:"A cgroup v2 path, e.g. /system.slice/checkout.service: every process in it."`
}

// Fault is one fault to inject.
type Fault struct {
	Pos    Pos    `yaml:"-"`
	Plugin string `yaml:"plugin" required:"true" doc:"The fault plugin (chaos plugins list)."`
	Target string `yaml:"target" required:"true" doc:"The name of a target under spec.targets."`
	// With are the plugin's own parameters; the plugin checks them
	// (engine.ValidateFaults asks it), and Experiment.PosOf knows where
	// each one stands: "spec.faults[0].with.delay".
	With map[string]any `yaml:"with" doc:"The plugin's own parameters; the plugin checks them."`
	// After is when the fault starts, from the start of the fault phase.
	After time.Duration `yaml:"after" doc:"When the fault starts, from the start of the fault phase, e.g. 10s."`
	// For is how long it lasts; zero means until the fault phase ends.
	For time.Duration `yaml:"for" doc:"How long the fault lasts; unset means until the fault phase ends."`
}

// Budget says when the experiment must stop early.
type Budget struct {
	Pos Pos `yaml:"-"`
	// AbortWhen expressions are checked on every new observation while
	// faults are live; the first that holds aborts the run.
	AbortWhen []*Expression `yaml:"abortWhen" doc:"Expressions checked on every new observation while faults are live; the first that holds aborts the run."`
	// ErrorBudget, when set, aborts the run once it has spent its share of
	// the service's error budget.
	ErrorBudget *ErrorBudget `yaml:"errorBudget" doc:"Abort once the experiment has spent its share of the SLO's error budget."`
	// BlindAfter is how many observations in a row of the probes an
	// abortWhen condition reads may fail to observe (so that the condition
	// cannot be evaluated) before the run aborts: flying blind is not safe.
	// Zero means DefaultBlindAfter.
	BlindAfter int `yaml:"blindAfter" min:"1" max:"100" doc:"Abort when the probes an abortWhen condition reads could not observe this many times in a row, so the condition could not be evaluated. Default 3."`
}

// Defaults of the budget section.
const (
	// DefaultBlindAfter is BlindAfter when the file sets none.
	DefaultBlindAfter = 3
	// MaxBlindAfter bounds BlindAfter: a budget blind for longer is no
	// budget.
	MaxBlindAfter = 100
)

// EffectiveBlindAfter is BlindAfter with its default applied.
func (b Budget) EffectiveBlindAfter() int {
	if b.BlindAfter == 0 {
		return DefaultBlindAfter
	}
	return b.BlindAfter
}

// ErrorBudget is the share of a service's SLO error budget an experiment
// may spend. An SLO of 99.9% over 30 days allows 43m12s of failure; a
// MaxSpend of 2% lets the experiment spend 51.84s of it (Allowance). What
// counts as failure is what failureRatio counts (see Failed), for the probes
// listed in Probes, or every probe when none is listed.
type ErrorBudget struct {
	Pos Pos     `yaml:"-"`
	SLO Percent `yaml:"slo" required:"true" doc:"The service's objective, e.g. 99.9%."`
	// Window is the SLO's window. It accepts days, unlike other durations:
	// 30d, 7d, 1d12h.
	Window   LongDuration `yaml:"window" required:"true" doc:"The SLO's window; days are allowed here: 30d, 28d, 7d12h."`
	MaxSpend Percent      `yaml:"maxSpend" required:"true" doc:"The share of the window's error budget the experiment may spend, e.g. 2%."`
	Probes   []string     `yaml:"probes" doc:"The probes whose failures count; every probe when unset."`
	// Remaining is an SLI source: a PromQL query answering the fraction
	// (0 to 1) of the window's error budget still left. With it, a run is
	// refused when less is left than the experiment may spend.
	Remaining *PrometheusProbe `yaml:"remaining" doc:"A Prometheus query answering the fraction (0..1) of the window's error budget left; the run is refused when less than maxSpend is left."`
}

// Allowance is how much failure time the experiment may cause: (100% - SLO)
// of Window, times MaxSpend.
func (b *ErrorBudget) Allowance() time.Duration {
	// Rounded to the nanosecond: 100 - 99.9 is not exactly 0.1 in floating
	// point, and an allowance a nanosecond short would abort a run that
	// spent exactly its share.
	return time.Duration(math.Round(float64(b.Window) * (100 - float64(b.SLO)) / 100 * float64(b.MaxSpend) / 100))
}

// Safety holds the guardrails of a run.
type Safety struct {
	Pos Pos `yaml:"-"`
	// MaxDuration is the hard cap on the whole run; past it the run aborts
	// and reverts. Zero means DefaultMaxDuration.
	MaxDuration time.Duration `yaml:"maxDuration" default:"10m" doc:"Hard cap on the whole run; past it the run aborts and reverts. Default 10m."`
	// MaxTargets caps how many concrete things (pods, processes, endpoints)
	// the faults may act on in all; zero means no cap beyond the file.
	MaxTargets int `yaml:"maxTargets" min:"1" doc:"At most this many resolved targets (pods, processes, endpoints) in all."`
	// MaxPercent caps the share of a Kubernetes target's matching pods that
	// may be faulted; zero means no cap.
	MaxPercent Percent `yaml:"maxPercent" doc:"At most this share of a Kubernetes target's matching pods, e.g. 50%."`
	// AllowedNamespaces, when set, are the only namespaces Kubernetes
	// targets may be in. Listing a protected namespace here (kube-system)
	// is how a file says it means to fault it.
	AllowedNamespaces []string `yaml:"allowedNamespaces" doc:"When set, the only namespaces Kubernetes targets may be in. Listing kube-system here unprotects it."`
	// ProtectedNamespaces are never faulted. kube-system is always
	// protected unless AllowedNamespaces lists it (ProtectedNamespaces).
	ProtectedNamespaces []string `yaml:"protectedNamespaces" doc:"Namespaces that are never faulted, in addition to kube-system."`
	// LeaseTTL is the lease of every injected fault: a plugin that is not
	// told to renew within it reverts by itself. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration `yaml:"leaseTTL" default:"10s" doc:"Lease of every fault: a plugin not renewed within it reverts by itself. Default 10s."`
}

// Defaults of the safety section.
const (
	// DefaultMaxDuration caps a run whose file sets no maxDuration.
	DefaultMaxDuration = 10 * time.Minute
	// DefaultLeaseTTL is the lease of a fault whose file sets no leaseTTL.
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL is the shortest lease: a renewal has to fit in it.
	MinLeaseTTL = time.Second
)

// DefaultProtectedNamespaces are protected unless a file allows them.
var DefaultProtectedNamespaces = []string{"kube-system"}

// Report says which report formats to write and where to deliver them.
type Report struct {
	Pos Pos `yaml:"-"`
	// Formats defaults to DefaultReportFormats.
	Formats  []string `yaml:"formats" enum:"markdown,html,json,junit" doc:"Report formats; default markdown and json."`
	Delivery Delivery `yaml:"delivery" doc:"Where the reports go besides --report-dir."`
}

// Report formats.
const (
	FormatMarkdown = "markdown"
	FormatHTML     = "html"
	FormatJSON     = "json"
	FormatJUnit    = "junit"
)

// ReportFormats are the report formats there are; DefaultReportFormats are
// those written when a file says nothing.
var (
	ReportFormats        = []string{FormatMarkdown, FormatHTML, FormatJSON, FormatJUnit}
	DefaultReportFormats = []string{FormatMarkdown, FormatJSON}
)

// Delivery says where reports are delivered.
type Delivery struct {
	Pos Pos `yaml:"-"`
	// Dir is a directory the report files are written into.
	Dir     string         `yaml:"dir" doc:"A directory the report files are written into."`
	Webhook Secret         `yaml:"webhook" doc:"A Slack-compatible webhook the summary is posted to; may hold ${env:NAME}."`
	Email   *EmailDelivery `yaml:"email" doc:"E-mail the report over SMTP."`
}

// EmailDelivery sends the report by e-mail.
type EmailDelivery struct {
	Pos  Pos      `yaml:"-"`
	To   []string `yaml:"to" required:"true" doc:"Recipients."`
	SMTP SMTP     `yaml:"smtp" required:"true" doc:"The mail server."`
}

// SMTP is a mail server. Password is usually ${env:NAME}.
type SMTP struct {
	Pos      Pos    `yaml:"-"`
	Address  string `yaml:"address" required:"true" doc:"host:port of the server, e.g. smtp.example.com:587."`
	From     string `yaml:"from" doc:"The sender address; default chaos@ the server's domain."`
	Username Secret `yaml:"username" doc:"Login, if the server needs one."`
	Password Secret `yaml:"password" doc:"Password; write ${env:NAME} so it stays out of the file."`
}

// FaultPhase is how long the fault phase lasts: until the last scheduled
// fault ends.
func (s *Spec) FaultPhase() time.Duration {
	var end time.Duration
	for _, f := range s.Faults {
		if f == nil {
			continue
		}
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

// EffectiveLeaseTTL is LeaseTTL with its default applied.
func (s Safety) EffectiveLeaseTTL() time.Duration {
	if s.LeaseTTL == 0 {
		return DefaultLeaseTTL
	}
	return s.LeaseTTL
}

// Protected reports whether a Kubernetes namespace must not be faulted:
// it is listed in ProtectedNamespaces, or it is a default-protected one
// (kube-system) that AllowedNamespaces does not list, or AllowedNamespaces
// is set and does not list it.
func (s Safety) Protected(namespace string) bool {
	for _, n := range s.ProtectedNamespaces {
		if n == namespace {
			return true
		}
	}
	allowed := false
	for _, n := range s.AllowedNamespaces {
		if n == namespace {
			allowed = true
		}
	}
	if len(s.AllowedNamespaces) > 0 && !allowed {
		return true
	}
	for _, n := range DefaultProtectedNamespaces {
		if n == namespace && !allowed {
			return true
		}
	}
	return false
}

// Secrets are the resolved values of the file's ${env:NAME} references,
// each once. The values themselves are Secrets, which never print them;
// text chaos did not write (a plugin's error) passes through Redact with
// these.
func (e *Experiment) Secrets() []string { return e.secrets }

// PosOf is where the value at path stands, e.g. PosOf("spec.faults[0].with.delay").
// A path the file does not spell out falls back to its closest ancestor that
// it does, so a missing field points at the mapping it is missing from.
func (e *Experiment) PosOf(path string) Pos {
	fp, _ := e.lookup(path)
	return fp.Value
}

// KeyPosOf is where the key of the value at path stands, falling back like
// PosOf; for list items, which have no key, it is the item's position.
func (e *Experiment) KeyPosOf(path string) Pos {
	fp, _ := e.lookup(path)
	if fp.Key.Line == 0 {
		return fp.Value
	}
	return fp.Key
}

// lookup finds path or its closest recorded ancestor; exact says which.
func (e *Experiment) lookup(path string) (fp FieldPos, exact bool) {
	for p := path; ; p = parentPath(p) {
		if f, ok := e.positions[p]; ok && f.Value.Line > 0 {
			return f, p == path
		}
		if p == "" {
			break
		}
	}
	if e.Pos.Line > 0 {
		return FieldPos{Value: e.Pos}, false
	}
	return FieldPos{Value: Pos{Line: 1, Col: 1}}, false
}

// Has reports whether the file spells out the value at path.
func (e *Experiment) Has(path string) bool {
	_, ok := e.positions[path]
	return ok
}

// parentPath strips the last segment of a dotted path: a.b[1] → a.b,
// a.b → a, a → "".
func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}
