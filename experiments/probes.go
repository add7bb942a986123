package experiments

import (
	"math"
	"strconv"
	"time"
)

// This file declares the probe kinds and what each observes (kinds.go is
// their table). Running probes is package probes' business; here are their settings, their defaults, and the
// observation types that expressions are type-checked against.

// Probe observes the system. Exactly one kind is set.
type Probe struct {
	Pos Pos `yaml:"-"`
	// Every is the interval between observations while faults are live.
	Every time.Duration `yaml:"every" default:"1s" doc:"Interval between observations while faults are live. Default 1s."`
	// Timeout bounds one observation; an observation that runs out of time
	// is a failure.
	Timeout time.Duration `yaml:"timeout" default:"2s" doc:"Bound on one observation, retries included; running out of time is a failure. Default: the smaller of 2s and every."`
	// Retries is how many more attempts a failed observation gets within
	// the same Timeout before it counts as a failure.
	Retries int `yaml:"retries" min:"0" max:"10" doc:"More attempts a failed observation gets within its timeout before it counts as a failure. Default 0."`
	// MaxResponse caps what one observation reads: an HTTP body, a
	// Prometheus answer, each of a command's stdout and stderr. An answer
	// that never ends must not grow the runner.
	MaxResponse ByteSize `yaml:"maxResponse" default:"1MiB" min:"1024" max:"67108864" doc:"Most one observation reads: an HTTP body, a Prometheus answer, each of a command's stdout and stderr. Larger answers fail the observation (exec output is cut and marked truncated). From 1KiB to 64MiB; default 1MiB."`

	HTTP       *HTTPProbe       `yaml:"http" oneof:"kind" doc:"One HTTP request; observes ok, error, status, latency, body, json, headers."`
	TCP        *TCPProbe        `yaml:"tcp" oneof:"kind" doc:"One TCP connection; observes ok, error, latency."`
	Prometheus *PrometheusProbe `yaml:"prometheus" oneof:"kind" doc:"One instant PromQL query; observes ok, error, value, empty, vector, latency."`
	Kubernetes *KubernetesProbe `yaml:"kubernetes" oneof:"kind" doc:"A Deployment, StatefulSet or DaemonSet, or pods by selector; observes ok, error, kind, desired, ready, available, updated, pods, podsRunning, podsPending, podsSucceeded, podsFailed, podsUnknown, podsReady, podsTerminating, restarts."`
	Exec       *ExecProbe       `yaml:"exec" oneof:"kind" doc:"Runs a command; observes ok, error, exitCode, stdout, stderr, duration, truncated."`
}

// Probe kinds, as Kind returns them.
const (
	ProbeHTTP       = "http"
	ProbeTCP        = "tcp"
	ProbePrometheus = "prometheus"
	ProbeKubernetes = "kubernetes"
	ProbeExec       = "exec"
)

// ProbeKinds are the probe kinds, in the order the file format lists them.
var ProbeKinds = []string{ProbeHTTP, ProbeTCP, ProbePrometheus, ProbeKubernetes, ProbeExec}

// Default probe timing, used when the file says nothing.
const (
	DefaultProbeEvery   = time.Second
	DefaultProbeTimeout = 2 * time.Second
	// MaxProbeRetries bounds Retries: past a few, retrying hides the very
	// failures the experiment is looking for.
	MaxProbeRetries = 10
	// MinProbeEvery is the shortest interval a probe may have: every
	// observation is an event in the record, and a probe that observes
	// as fast as it can fills memory and the report, not knowledge.
	MinProbeEvery = 100 * time.Millisecond
	// DefaultMaxResponse, MinMaxResponse and MaxMaxResponse bound what
	// one observation may read (maxResponse).
	DefaultMaxResponse ByteSize = 1 << 20
	MinMaxResponse     ByteSize = 1 << 10
	MaxMaxResponse     ByteSize = 64 << 20
)

// EffectiveMaxResponse is the probe's response cap: maxResponse, or
// DefaultMaxResponse when the file does not set it.
func (p *Probe) EffectiveMaxResponse() ByteSize {
	if p.MaxResponse > 0 {
		return p.MaxResponse
	}
	return DefaultMaxResponse
}

// Kind says which kind the probe is; "" when none is set.
func (p *Probe) Kind() string {
	k, _ := p.kind()
	return k.Name
}

// FailedObservation is an observation of the probe's kind that says the
// probe could not observe, for reason (a timeout, a probe that returned
// nothing). It is nil for a probe with no kind.
func (p *Probe) FailedObservation(reason string) Observation {
	if k, ok := p.kind(); ok {
		return k.failed(reason)
	}
	return nil
}

// zeroObservation returns the observation type of a probe, so expressions
// can be type-checked against it before anything runs.
func zeroObservation(p *Probe) Observation {
	k, _ := p.kind()
	return k.zero
}

// HTTPProbe sends one request and observes the answer.
type HTTPProbe struct {
	Pos     Pos               `yaml:"-"`
	URL     Secret            `yaml:"url" required:"true" doc:"http:// or https:// URL; may hold ${env:NAME}."`
	Method  string            `yaml:"method" default:"GET" doc:"GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS. Default GET."`
	Headers map[string]Secret `yaml:"headers" doc:"Request headers; values may be ${env:NAME}."`
	Body    Secret            `yaml:"body" doc:"Request body; may hold ${env:NAME}."`
	TLS     *TLSConfig        `yaml:"tls" doc:"TLS settings for an https URL."`
}

// TLSConfig is how an https probe trusts and identifies itself. Paths are
// files on the machine chaos runs on.
type TLSConfig struct {
	Pos Pos `yaml:"-"`
	// CA is a PEM file of the certificate authorities to trust instead of
	// the system's.
	CA string `yaml:"ca" doc:"PEM file of the CAs to trust instead of the system's."`
	// Cert and Key are a client certificate and its key (PEM); both or
	// neither.
	Cert string `yaml:"cert" doc:"PEM client certificate; needs key."`
	Key  string `yaml:"key" doc:"PEM private key of cert."`
	// InsecureSkipVerify skips checking the server's certificate. It is
	// for test rigs only.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify" doc:"Do not check the server's certificate (test rigs only)."`
}

// TCPProbe opens one TCP connection and closes it.
type TCPProbe struct {
	Pos     Pos    `yaml:"-"`
	Address string `yaml:"address" required:"true" doc:"host:port to connect to."`
}

// PrometheusProbe runs one instant query against a Prometheus server.
type PrometheusProbe struct {
	Pos   Pos             `yaml:"-"`
	URL   Secret          `yaml:"url" required:"true" doc:"The Prometheus server, e.g. http://127.0.0.1:9090."`
	Query string          `yaml:"query" required:"true" doc:"An instant PromQL query."`
	Auth  *PrometheusAuth `yaml:"auth" doc:"How to authenticate: bearer or basic."`
}

// PrometheusAuth authenticates a Prometheus query: exactly one of Bearer and
// Basic. Write secrets as ${env:NAME}.
type PrometheusAuth struct {
	Pos    Pos        `yaml:"-"`
	Bearer Secret     `yaml:"bearer" oneof:"auth" doc:"A bearer token; write ${env:NAME}."`
	Basic  *BasicAuth `yaml:"basic" oneof:"auth" doc:"HTTP basic authentication."`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Pos      Pos    `yaml:"-"`
	Username Secret `yaml:"username" required:"true"`
	Password Secret `yaml:"password" required:"true" doc:"Write ${env:NAME}."`
}

// KubernetesProbe reads one workload's status, or a set of pods, through
// the Kubernetes API. Exactly one of Deployment, StatefulSet, DaemonSet and
// Pods is set. Every kind also counts the pods it covers (the workload's
// spec.selector, or Pods' selectors) by phase, and their container
// restarts within RestartWindow.
type KubernetesProbe struct {
	Pos Pos `yaml:"-"`
	// Deployment, StatefulSet and DaemonSet are namespace/name.
	Deployment  string          `yaml:"deployment" oneof:"workload" doc:"namespace/name of a Deployment; observes its replica counts and its pods."`
	StatefulSet string          `yaml:"statefulSet" oneof:"workload" doc:"namespace/name of a StatefulSet; observes its replica counts and its pods."`
	DaemonSet   string          `yaml:"daemonSet" oneof:"workload" doc:"namespace/name of a DaemonSet; observes its scheduled/ready/available/updated counts and its pods."`
	Pods        *KubernetesPods `yaml:"pods" oneof:"workload" doc:"Pods by selector, without a workload; observes their counts by phase and their restarts."`
	// RestartWindow is how far back restarts counts container restarts.
	RestartWindow time.Duration `yaml:"restartWindow" default:"5m" doc:"How far back restarts counts container restarts; from 1s to 1h. Default 5m."`
}

// KubernetesPods selects the pods a kubernetes probe counts when it watches
// no workload.
type KubernetesPods struct {
	Pos       Pos    `yaml:"-"`
	Namespace string `yaml:"namespace" required:"true" doc:"The pods' namespace."`
	// Selector is a label selector, as kubectl -l takes it.
	Selector string `yaml:"selector" required:"true" doc:"A label selector, e.g. app=checkout,tier in (web, api)."`
	// FieldSelector narrows the pods further, as kubectl --field-selector.
	FieldSelector string `yaml:"fieldSelector" doc:"A field selector narrowing the pods, e.g. spec.nodeName=node-1."`
}

// Kubernetes probe kinds, as KubernetesProbe.Kind returns them and as the
// observation's kind field says.
const (
	KubernetesDeployment  = "deployment"
	KubernetesStatefulSet = "statefulSet"
	KubernetesDaemonSet   = "daemonSet"
	KubernetesPodsKind    = "pods"
)

// Bounds of restartWindow.
const (
	DefaultRestartWindow = 5 * time.Minute
	MinRestartWindow     = time.Second
	// MaxRestartWindow bounds what the probe remembers: one entry per
	// observation that saw a restart, for as long as the window.
	MaxRestartWindow = time.Hour
)

// Kind says what the probe watches: KubernetesDeployment,
// KubernetesStatefulSet, KubernetesDaemonSet or KubernetesPodsKind; "" when
// none is set.
func (k *KubernetesProbe) Kind() string {
	switch {
	case k.Deployment != "":
		return KubernetesDeployment
	case k.StatefulSet != "":
		return KubernetesStatefulSet
	case k.DaemonSet != "":
		return KubernetesDaemonSet
	case k.Pods != nil:
		return KubernetesPodsKind
	}
	return ""
}

// Workload is the namespace/name of the watched workload; "" for pods.
func (k *KubernetesProbe) Workload() string {
	switch {
	case k.Deployment != "":
		return k.Deployment
	case k.StatefulSet != "":
		return k.StatefulSet
	}
	return k.DaemonSet
}

// Namespace is the namespace the probe reads in.
func (k *KubernetesProbe) Namespace() string {
	if k.Pods != nil {
		return k.Pods.Namespace
	}
	ns, _ := splitNamespaced(k.Workload())
	return ns
}

// Name is the workload's name; "" for pods.
func (k *KubernetesProbe) Name() string { _, n := splitNamespaced(k.Workload()); return n }

// EffectiveRestartWindow is restartWindow, or DefaultRestartWindow.
func (k *KubernetesProbe) EffectiveRestartWindow() time.Duration {
	if k.RestartWindow > 0 {
		return k.RestartWindow
	}
	return DefaultRestartWindow
}

// Describe says what the probe watches, for the plan and for errors:
// "statefulSet shop/db", "pods in shop matching app=web".
func (k *KubernetesProbe) Describe() string {
	if k.Pods != nil {
		s := "pods in " + k.Pods.Namespace + " matching " + k.Pods.Selector
		if k.Pods.FieldSelector != "" {
			s += " and " + k.Pods.FieldSelector
		}
		return s
	}
	return k.Kind() + " " + k.Workload()
}

func splitNamespaced(s string) (string, string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return "", s
}

// ExecProbe runs a command, without a shell, and observes how it ended.
type ExecProbe struct {
	Pos Pos `yaml:"-"`
	// Command is the program and its arguments; no shell is involved. It
	// cannot hold a secret: every user of the machine can read a process's
	// arguments. A secret goes in Env.
	Command []string `yaml:"command" required:"true" doc:"Program and arguments, e.g. [pg_isready, -h, 127.0.0.1]. No shell is involved; no secrets (pass them in env)."`
	// Env is added to the environment chaos runs in.
	Env map[string]Secret `yaml:"env" doc:"Added to the environment; values may be ${env:NAME}."`
}

// Observation is what one probe saw once. Expressions read its fields as
// probe.field; the engine records Values in the report.
type Observation interface {
	// Succeeded is false when the probe could not observe at all (timeout,
	// refused connection, unparsable answer). Such an observation never
	// lets an expression that reads it hold.
	Succeeded() bool
	// Failure says why the probe could not observe; empty on success.
	Failure() string
	// Values are the fields, for the record.
	Values() map[string]any
}

// FailureCounter is implemented by observations that can have observed
// fine and still count as a failure for failureRatio, consecutiveFailures
// and the error budget (an HTTP 503, an exit code of 1).
type FailureCounter interface {
	CountsAsFailure() bool
}

// Failed reports whether o counts as a failure in the probe history: the
// probe could not observe, or the observation says the service failed (see
// each observation type's CountsAsFailure).
func Failed(o Observation) bool {
	if o == nil || !o.Succeeded() {
		return true
	}
	if fc, ok := o.(FailureCounter); ok {
		return fc.CountsAsFailure()
	}
	return false
}

func withError(v map[string]any, e string) map[string]any {
	if e != "" {
		v["error"] = e
	}
	return v
}

// recordable keeps a float that JSON cannot carry (NaN: 0/0, a ratio of
// no requests; ±Inf) as its name, so the record stays writable.
func recordable(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

func roundDuration(d time.Duration) string { return d.Round(time.Microsecond).String() }

// HTTPObservation is what an http probe sees.
type HTTPObservation struct {
	OK      bool          `expr:"ok"`
	Error   string        `expr:"error"`
	Status  int           `expr:"status"`
	Latency time.Duration `expr:"latency"`
	Body    string        `expr:"body"`
	// JSON is the body parsed as JSON when the answer says it is JSON (or
	// the body parses as such); nil otherwise: `health.json.status == "up"`.
	JSON any `expr:"json"`
	// Headers are the answer's headers, by canonical name, values joined
	// with ", ": `front.headers["Content-Type"]`.
	Headers map[string]string `expr:"headers"`
}

// Succeeded implements Observation.
func (o HTTPObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o HTTPObservation) Failure() string { return o.Error }

// CountsAsFailure implements FailureCounter: a 5xx answer is the service
// failing, as SLOs usually count it; a 4xx is the client's mistake.
func (o HTTPObservation) CountsAsFailure() bool { return !o.OK || o.Status >= 500 }

// Values implements Observation. The body is left out: it may be large and
// may carry data the owners would not want in a report.
func (o HTTPObservation) Values() map[string]any {
	return withError(map[string]any{"ok": o.OK, "status": o.Status, "latency": roundDuration(o.Latency)}, o.Error)
}

// TCPObservation is what a tcp probe sees: whether a connection was made,
// and how long it took.
type TCPObservation struct {
	OK      bool          `expr:"ok"`
	Error   string        `expr:"error"`
	Latency time.Duration `expr:"latency"`
}

// Succeeded implements Observation.
func (o TCPObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o TCPObservation) Failure() string { return o.Error }

// Values implements Observation.
func (o TCPObservation) Values() map[string]any {
	return withError(map[string]any{"ok": o.OK, "latency": roundDuration(o.Latency)}, o.Error)
}

// PrometheusObservation is what a prometheus probe sees: the result of one
// instant query. Value is the value of a scalar result, or of the first
// sample of a vector; Empty says the vector had no samples (Value is then
// 0: a rate of errors that never happened is often empty, so say what
// empty means for your query). Vector has every sample.
type PrometheusObservation struct {
	OK      bool               `expr:"ok"`
	Error   string             `expr:"error"`
	Value   float64            `expr:"value"`
	Empty   bool               `expr:"empty"`
	Vector  []PrometheusSample `expr:"vector"`
	Latency time.Duration      `expr:"latency"`
}

// PrometheusSample is one sample of an instant vector.
type PrometheusSample struct {
	Labels map[string]string `expr:"labels"`
	Value  float64           `expr:"value"`
}

// Succeeded implements Observation.
func (o PrometheusObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o PrometheusObservation) Failure() string { return o.Error }

// Values implements Observation.
func (o PrometheusObservation) Values() map[string]any {
	return withError(map[string]any{"ok": o.OK, "value": recordable(o.Value), "empty": o.Empty, "samples": len(o.Vector), "latency": roundDuration(o.Latency)}, o.Error)
}

// KubernetesObservation is what a kubernetes probe sees. Desired, Ready,
// Available and Updated are the workload's own status counts (for a
// DaemonSet: desiredNumberScheduled, numberReady, numberAvailable,
// updatedNumberScheduled); a pods probe has no workload: an expression
// reading them is refused at validate time, and at run time the fields are
// missing (FieldMissing), so they never let an expression hold.
//
// The pod counts cover the pods the workload's spec.selector (or the pods
// probe's selectors) matches, listed at the same observation: Pods is all
// of them, PodsRunning..PodsUnknown split them by status.phase (a pod being
// deleted still counts in its phase), PodsReady are those whose Ready
// condition is True and that are not being deleted, PodsTerminating those
// being deleted. Restarts is the number of container restarts seen within
// the probe's restartWindow (see package probes for exactly how they are
// counted).
type KubernetesObservation struct {
	OK    bool   `expr:"ok"`
	Error string `expr:"error"`
	// Kind is what was observed: deployment, statefulSet, daemonSet or pods.
	Kind      string `expr:"kind"`
	Desired   int    `expr:"desired"`
	Ready     int    `expr:"ready"`
	Available int    `expr:"available"`
	Updated   int    `expr:"updated"`

	Pods            int `expr:"pods"`
	PodsRunning     int `expr:"podsRunning"`
	PodsPending     int `expr:"podsPending"`
	PodsSucceeded   int `expr:"podsSucceeded"`
	PodsFailed      int `expr:"podsFailed"`
	PodsUnknown     int `expr:"podsUnknown"`
	PodsReady       int `expr:"podsReady"`
	PodsTerminating int `expr:"podsTerminating"`
	Restarts        int `expr:"restarts"`
}

// workloadFields are the fields only a workload has.
var workloadFields = map[string]bool{"desired": true, "ready": true, "available": true, "updated": true}

// Succeeded implements Observation.
func (o KubernetesObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o KubernetesObservation) Failure() string { return o.Error }

// Values implements Observation.
func (o KubernetesObservation) Values() map[string]any {
	v := map[string]any{"ok": o.OK}
	if !o.OK {
		return withError(v, o.Error)
	}
	v["kind"] = o.Kind
	if o.Kind != KubernetesPodsKind {
		v["desired"], v["ready"], v["available"], v["updated"] = o.Desired, o.Ready, o.Available, o.Updated
	}
	v["pods"], v["podsRunning"], v["podsPending"], v["podsSucceeded"] = o.Pods, o.PodsRunning, o.PodsPending, o.PodsSucceeded
	v["podsFailed"], v["podsUnknown"], v["podsReady"], v["podsTerminating"] = o.PodsFailed, o.PodsUnknown, o.PodsReady, o.PodsTerminating
	v["restarts"] = o.Restarts
	return withError(v, o.Error)
}

// ExecObservation is what an exec probe sees. OK means the command ran and
// exited, whatever its exit code; it is false when it could not start or
// ran out of time.
type ExecObservation struct {
	OK       bool          `expr:"ok"`
	Error    string        `expr:"error"`
	ExitCode int           `expr:"exitCode"`
	Stdout   string        `expr:"stdout"`
	Stderr   string        `expr:"stderr"`
	Duration time.Duration `expr:"duration"`
	// Truncated says stdout or stderr was cut at the probe's maxResponse.
	Truncated bool `expr:"truncated"`
}

// Succeeded implements Observation.
func (o ExecObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o ExecObservation) Failure() string { return o.Error }

// CountsAsFailure implements FailureCounter: an exit code other than 0 is
// a failure, as a shell would say.
func (o ExecObservation) CountsAsFailure() bool { return !o.OK || o.ExitCode != 0 }

// Values implements Observation. The output is left out, like an HTTP
// body: it may be large or carry data the owners would not want copied.
func (o ExecObservation) Values() map[string]any {
	v := withError(map[string]any{"ok": o.OK, "exitCode": o.ExitCode, "duration": roundDuration(o.Duration)}, o.Error)
	if o.Truncated {
		// The output is not in the record, but that it was cut is: an
		// expression that read it read only the start.
		v["truncated"] = true
	}
	return v
}

// Fields every observation has, even one that could not be made: whether it
// was made, why not, and how long it was waited for.
var alwaysObserved = map[string]bool{"ok": true, "error": true, "latency": true, "duration": true}

// FieldMissing says whether an observation lacks the field an expression
// calls field, and why. An observation that could not be made has only ok,
// error and the time it was waited for (latency, or duration for exec); an
// empty Prometheus result has no value. Reading a missing field never lets
// an expression hold: a zero there is not evidence of anything.
func FieldMissing(o Observation, field string) (string, bool) {
	if o == nil {
		return "there is no observation", true
	}
	if !o.Succeeded() {
		if alwaysObserved[field] {
			return "", false
		}
		return "the probe could not observe: " + o.Failure(), true
	}
	if p, ok := o.(PrometheusObservation); ok && p.Empty && field == "value" {
		return "the query returned no samples", true
	}
	if k, ok := o.(KubernetesObservation); ok && k.Kind == KubernetesPodsKind && workloadFields[field] {
		return "a pods probe watches no workload, so it has no " + field, true
	}
	return "", false
}

// WithWaited gives an observation that could not be made the time it was
// waited for as its latency (duration for exec), when that is longer than
// what it says: a timeout is not fast, and a service that stopped answering
// must trip a latency budget. An observation that was made is returned as
// it is.
func WithWaited(o Observation, waited time.Duration) Observation {
	if o == nil || o.Succeeded() {
		return o
	}
	switch v := o.(type) {
	case HTTPObservation:
		v.Latency = max(v.Latency, waited)
		return v
	case TCPObservation:
		v.Latency = max(v.Latency, waited)
		return v
	case PrometheusObservation:
		v.Latency = max(v.Latency, waited)
		return v
	case ExecObservation:
		v.Duration = max(v.Duration, waited)
		return v
	}
	return o
}
