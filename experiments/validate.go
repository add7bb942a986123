package experiments

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

var (
	// namePattern is what a metadata.name may look like: it ends up in file
	// names, report titles and, later, Kubernetes object names.
	namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsLabel is a Kubernetes namespace or object name.
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomain is a Kubernetes object name that may have dots.
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// labelName is the name part of a Kubernetes label key, or a label value.
	labelName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// targetName is what a target may be called: it appears in reports and
	// in locks.
	targetName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
	// headerName is an HTTP header field name (a token).
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// httpMethods are the methods an http probe may use.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// checker collects problems for one file, positioned by path.
type checker struct {
	exp   *Experiment
	probs *[]Problem
	// bad are the paths decoding already reported a problem at. What
	// validation would say about those values is a consequence of that
	// problem (an empty value, a zero), so it keeps quiet about them.
	bad map[string]bool
}

// broken reports whether decoding found a problem at path or inside it.
func (c checker) broken(path string) bool {
	if c.bad[path] {
		return true
	}
	for p := range c.bad {
		if strings.HasPrefix(p, path) && len(p) > len(path) && (p[len(path)] == '.' || p[len(path)] == '[') {
			return true
		}
	}
	return false
}

// at reports a problem about the value at path (or, if the file does not
// spell it out, about its closest ancestor's value).
func (c checker) at(path, msg, hint string) {
	if c.broken(path) {
		return
	}
	*c.probs = append(*c.probs, Problem{Pos: c.exp.PosOf(path), Path: path, Message: msg, Hint: hint})
}

// key reports a problem at the key of path, or of its closest ancestor: the
// place to look when something is missing or the field as a whole is wrong.
func (c checker) key(path, msg, hint string) {
	if c.bad[path] {
		return
	}
	*c.probs = append(*c.probs, Problem{Pos: c.exp.KeyPosOf(path), Path: path, Message: msg, Hint: hint})
}

// missing reports a required field that is not there.
func (c checker) missing(path, hint string) {
	if c.broken(path) {
		return
	}
	c.key(path, lastSegment(path)+" is required", hint)
}

// noKind reports an object that sets none of its kinds, unless decoding
// found something wrong inside it (a misspelled kind, most likely).
func (c checker) noKind(path, msg, hint string) {
	if c.broken(path) {
		return
	}
	c.key(path, msg, hint)
}

// lastSegment is the field a path ends in: "url" for "spec.probes.x.http.url".
func lastSegment(path string) string {
	return path[strings.LastIndexByte(path, '.')+1:]
}

// validate checks what decoding cannot: required fields, references between
// sections, value ranges, blast radius, and expressions. Defaults are applied
// here too.
func validate(e *Experiment, opts Options, probs *[]Problem) {
	c := checker{exp: e, probs: probs, bad: map[string]bool{}}
	for _, p := range *probs {
		c.bad[p.Path] = true
	}
	if c.bad[""] {
		// The document is not a mapping: nothing in it can be checked.
		return
	}
	switch {
	case e.APIVersion == "":
		c.missing("apiVersion", "apiVersion: "+APIVersion)
	case e.APIVersion != APIVersion:
		c.at("apiVersion", fmt.Sprintf("apiVersion must be %q, got %q", APIVersion, e.APIVersion), "this chaos reads "+APIVersion)
	}
	switch {
	case e.Kind == "":
		c.missing("kind", "kind: "+KindExperiment)
	case e.Kind != KindExperiment:
		c.at("kind", fmt.Sprintf("kind must be %q, got %q", KindExperiment, e.Kind), strictyaml.DidYouMean(e.Kind, []string{KindExperiment}, ""))
	}
	validateMetadata(c, &e.Metadata)

	s := &e.Spec
	if !e.Has("spec") {
		c.missing("spec", "spec holds the hypothesis, targets, probes, steadyState and faults")
		return
	}
	if strings.TrimSpace(s.Hypothesis) == "" {
		c.missing("spec.hypothesis", "say in a sentence what you expect to hold while the faults are live")
	}
	if len(s.Targets) == 0 && !c.broken("spec.targets") {
		c.key("spec.targets", "spec.targets must name at least one target", "e.g. targets: {upstream: {endpoint: {listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}}}")
	}
	for _, name := range sortedKeys(s.Targets) {
		validateTarget(c, "spec.targets."+name, name, s.Targets[name], &s.Safety)
	}
	checkEndpointGraph(c, s.Targets)
	if len(s.Probes) == 0 && !c.broken("spec.probes") {
		c.key("spec.probes", "spec.probes must declare at least one probe", "e.g. probes: {checkout: {http: {url: http://127.0.0.1:8080/health}}}")
	}
	for _, name := range sortedKeys(s.Probes) {
		validateProbe(c, "spec.probes."+name, name, s.Probes[name])
		validateProbeBounds(c, "spec.probes."+name, s.Probes[name], opts)
	}

	env := compileEnv(s.Probes)
	if c.bad["spec.probes"] || len(s.Probes) == 0 {
		// No probes, or probes that could not be decoded: every expression
		// would read unknown names, and that is said already.
		env = nil
	}
	if len(s.SteadyState) == 0 {
		c.key("spec.steadyState", "spec.steadyState must have at least one expression", "e.g. - checkout.status == 200")
	}
	for i, x := range s.SteadyState {
		compileInto(c, x, env, fmt.Sprintf("spec.steadyState[%d]", i))
	}
	for i, x := range s.Budget.AbortWhen {
		compileInto(c, x, env, fmt.Sprintf("spec.budget.abortWhen[%d]", i))
	}
	if s.Budget.ErrorBudget != nil {
		validateErrorBudget(c, "spec.budget.errorBudget", s.Budget.ErrorBudget, s.Probes)
	}
	validateBlindAfter(c, &s.Budget)

	if len(s.Faults) == 0 {
		c.key("spec.faults", "spec.faults must list at least one fault", "e.g. - {plugin: latency, target: upstream, with: {delay: 200ms}, for: 30s}")
	}
	targetNames := sortedKeys(s.Targets)
	if c.bad["spec.targets"] {
		targetNames = nil // unknown, not empty
	}
	for i, f := range s.Faults {
		validateFault(c, fmt.Sprintf("spec.faults[%d]", i), f, targetNames, opts.Plugins)
		checkWithSize(c, fmt.Sprintf("spec.faults[%d]", i), f)
	}
	if len(s.Faults) > 0 && s.FaultPhase() == 0 && !c.broken("spec.faults") {
		c.at("spec.faults[0]", "no fault has a duration: give at least one fault `for`", "for example for: 30s")
	}
	validateObservable(c, s)
	validateSafety(c, s)
	validateReport(c, &s.Report)
}

func validateMetadata(c checker, m *Metadata) {
	switch {
	case m.Name == "":
		c.missing("metadata.name", "a short name like checkout-survives-slow-upstream")
	case len(m.Name) > 63 || !namePattern.MatchString(m.Name):
		c.at("metadata.name", fmt.Sprintf("metadata.name %q must be lowercase letters, digits and '-', at most 63 characters", strictyaml.Shorten(m.Name)),
			"e.g. "+suggestName(m.Name))
	}
	if m.Owner.Team == "" {
		c.missing("metadata.owner.team", "the report is addressed to the owning team: owner: {team: payments}")
	}
	if m.Owner.Email != "" {
		checkEmail(c, "metadata.owner.email", m.Owner.Email)
	}
	if !m.Owner.Webhook.IsZero() {
		checkURL(c, "metadata.owner.webhook", m.Owner.Webhook, "https://hooks.slack.com/services/T000/B000/XXXX")
	}
	for _, k := range sortedKeys(m.Labels) {
		path := "metadata.labels." + k
		if msg := checkLabelKey(k); msg != "" {
			c.key(path, fmt.Sprintf("label key %q %s", strictyaml.Shorten(k), msg), "e.g. team or example.com/tier")
		}
		if v := m.Labels[k]; v != "" && (len(v) > 63 || !labelName.MatchString(v)) {
			c.at(path, fmt.Sprintf("label value %q must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", strictyaml.Shorten(v)), "")
		}
	}
}

// suggestName makes a valid metadata.name out of an invalid one.
func suggestName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if out == "" {
		return "checkout-survives-slow-upstream"
	}
	return out
}

func checkLabelKey(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	switch {
	case hasPrefix && (len(prefix) > 253 || !dnsSubdomain.MatchString(prefix)):
		return "has a prefix that is not a DNS subdomain"
	case len(name) > 63 || !labelName.MatchString(name):
		return "must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, after an optional DNS prefix and '/'"
	}
	return ""
}

func validateTarget(c checker, path, name string, t *Target, safety *Safety) {
	if !targetName.MatchString(name) {
		c.key(path, fmt.Sprintf("target name %q must be letters, digits, '-', '_' or '.'", strictyaml.Shorten(name)), "e.g. "+suggestName(name))
	}
	if t == nil {
		c.key(path, fmt.Sprintf("target %s has no kind", name), "one of: "+strings.Join(TargetKinds, ", "))
		return
	}
	set := setKinds(c, path, []kindField{
		{TargetEndpoint, t.Endpoint != nil}, {TargetKubernetes, t.Kubernetes != nil},
		{TargetHost, t.Host != nil}, {TargetProcess, t.Process != nil},
	})
	switch len(set) {
	case 0:
		c.noKind(path, fmt.Sprintf("target %s has no kind", name), "one of: "+strings.Join(TargetKinds, ", "))
		return
	case 1:
	default:
		c.key(path+"."+set[1], fmt.Sprintf("target %s has more than one kind: %s and %s", name, set[0], set[1]),
			"a target is exactly one of "+strings.Join(TargetKinds, ", ")+"; declare one target per kind")
		return
	}
	switch {
	case t.Endpoint != nil:
		ep := t.Endpoint
		p := path + ".endpoint"
		checkHostPort(c, p+".listen", ep.Listen)
		checkHostPort(c, p+".upstream", ep.Upstream)
		if ep.Listen != "" && ep.Listen == ep.Upstream {
			c.at(p+".upstream", "listen and upstream are the same address: traffic would loop", "the fault stands on listen and forwards to upstream")
		}
	case t.Kubernetes != nil:
		validateKubernetesTarget(c, path+".kubernetes", t.Kubernetes, safety)
	case t.Process != nil:
		validateProcessTarget(c, path+".process", t.Process)
	}
}

type kindField struct {
	name string
	set  bool
}

// setKinds lists the kinds that are set, in the order the file writes them.
func setKinds(c checker, path string, kinds []kindField) []string {
	var set []string
	for _, k := range kinds {
		if k.set {
			set = append(set, k.name)
		}
	}
	sort.SliceStable(set, func(i, j int) bool {
		a, b := c.exp.KeyPosOf(path+"."+set[i]), c.exp.KeyPosOf(path+"."+set[j])
		return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
	})
	return set
}

func validateKubernetesTarget(c checker, path string, k *KubernetesTarget, safety *Safety) {
	switch {
	case k.Namespace == "":
		c.missing(path+".namespace", "the namespace of the pods, e.g. namespace: shop")
	case len(k.Namespace) > 63 || !dnsLabel.MatchString(k.Namespace):
		c.at(path+".namespace", fmt.Sprintf("namespace %q is not a valid Kubernetes namespace", strictyaml.Shorten(k.Namespace)), "lowercase letters, digits and '-', at most 63 characters")
	case safety.Protected(k.Namespace):
		hint := fmt.Sprintf("list it under spec.safety.allowedNamespaces if you mean to fault %s", k.Namespace)
		if slices.Contains(safety.ProtectedNamespaces, k.Namespace) {
			hint = "it is listed under spec.safety.protectedNamespaces"
		} else if len(safety.AllowedNamespaces) > 0 && !slices.Contains(safety.AllowedNamespaces, k.Namespace) {
			hint = "allowed: " + strings.Join(safety.AllowedNamespaces, ", ")
		}
		c.at(path+".namespace", fmt.Sprintf("namespace %s is protected: no fault may act on it", k.Namespace), hint)
	}
	switch {
	case strings.TrimSpace(k.Selector) == "":
		c.missing(path+".selector", "a label selector such as app=checkout; selecting every pod of a namespace is never what a fault wants")
	default:
		if msg := checkSelector(k.Selector); msg != "" {
			c.at(path+".selector", fmt.Sprintf("selector %q is not a label selector: %s", strictyaml.Shorten(k.Selector), msg), "e.g. app=checkout,tier in (web, api),!canary")
		}
	}
	pk := &k.Pick
	pp := path + ".pick"
	modes := setKinds(c, pp, []kindField{
		{"count", c.exp.Has(pp + ".count")}, {"percent", c.exp.Has(pp + ".percent")}, {"all", pk.All},
	})
	if len(modes) > 1 {
		c.key(pp+"."+modes[1], fmt.Sprintf("pick has both %s and %s", modes[0], modes[1]), "pick exactly one of count, percent, all")
		return
	}
	switch {
	case c.exp.Has(pp+".count") && pk.Count < 1:
		c.at(pp+".count", fmt.Sprintf("pick count %d must be at least 1", pk.Count), "")
	case c.exp.Has(pp+".percent") && (pk.Percent <= 0 || pk.Percent > 100):
		c.at(pp+".percent", fmt.Sprintf("pick percent %s must be more than 0%% and at most 100%%", pk.Percent), "e.g. 25%")
	case len(modes) == 0:
		pk.Count = 1
	}
}

// checkSelector checks a Kubernetes label selector and says what is wrong.
func checkSelector(sel string) string {
	var reqs []string
	depth, start := 0, 0
	for i, r := range sel {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return "unbalanced )"
			}
		case ',':
			if depth == 0 {
				reqs = append(reqs, sel[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return "unclosed ("
	}
	reqs = append(reqs, sel[start:])
	for _, req := range reqs {
		req = strings.TrimSpace(req)
		if req == "" {
			return "empty requirement"
		}
		if m := selectorSet.FindStringSubmatch(req); m != nil {
			if msg := checkLabelKey(m[1]); msg != "" {
				return fmt.Sprintf("key %q %s", m[1], msg)
			}
			for _, v := range strings.Split(m[3], ",") {
				if v = strings.TrimSpace(v); v != "" && (len(v) > 63 || !labelName.MatchString(v)) {
					return fmt.Sprintf("value %q is not a label value", v)
				}
			}
			continue
		}
		if m := selectorCmp.FindStringSubmatch(req); m != nil {
			if msg := checkLabelKey(m[1]); msg != "" {
				return fmt.Sprintf("key %q %s", m[1], msg)
			}
			if v := m[3]; v != "" && (len(v) > 63 || !labelName.MatchString(v)) {
				return fmt.Sprintf("value %q is not a label value", v)
			}
			continue
		}
		key := strings.TrimSpace(strings.TrimPrefix(req, "!"))
		if msg := checkLabelKey(key); msg != "" {
			return fmt.Sprintf("%q is not key=value, key!=value, key in (...), key notin (...), key or !key", req)
		}
	}
	return ""
}

var (
	selectorSet = regexp.MustCompile(`^(\S+)\s+(in|notin)\s*\(([^()]*)\)$`)
	selectorCmp = regexp.MustCompile(`^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$`)
)

func validateProcessTarget(c checker, path string, p *ProcessTarget) {
	by := setKinds(c, path, []kindField{
		{"pid", c.exp.Has(path + ".pid")}, {"name", c.exp.Has(path + ".name")}, {"cgroup", c.exp.Has(path + ".cgroup")},
	})
	switch len(by) {
	case 0:
		c.noKind(path, "a process target needs one of pid, name or cgroup", "e.g. process: {name: checkout}")
		return
	case 1:
	default:
		c.key(path+"."+by[1], fmt.Sprintf("process target has both %s and %s", by[0], by[1]), "find the process by exactly one of pid, name, cgroup")
		return
	}
	switch by[0] {
	case "pid":
		if p.PID < 1 {
			c.at(path+".pid", fmt.Sprintf("pid %d is not a process id", p.PID), "a number from 1 up")
		}
	case "name":
		switch {
		case p.Name == "":
			c.at(path+".name", "name is empty", "the process name as in /proc/PID/comm")
		case len(p.Name) > 15 || strings.ContainsRune(p.Name, '/'):
			c.at(path+".name", fmt.Sprintf("process name %q can never match: the kernel keeps at most 15 bytes of a name, without '/'", strictyaml.Shorten(p.Name)),
				fmt.Sprintf("use the first 15 bytes: %q, or find it by cgroup", truncateName(p.Name)))
		}
	case "cgroup":
		if !strings.HasPrefix(p.Cgroup, "/") || slices.Contains(strings.Split(p.Cgroup, "/"), "..") {
			c.at(path+".cgroup", fmt.Sprintf("cgroup %q must be an absolute cgroup v2 path without ..", strictyaml.Shorten(p.Cgroup)), "e.g. /system.slice/checkout.service")
		}
	}
}

func truncateName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}

func checkHostPort(c checker, path, v string) {
	field := lastSegment(path)
	if v == "" {
		c.missing(path, "host:port, e.g. 127.0.0.1:8080")
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		c.at(path, fmt.Sprintf("%s %q is not host:port", field, strictyaml.Shorten(v)), "e.g. 127.0.0.1:8080")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.at(path, fmt.Sprintf("%s %q has no valid port", field, strictyaml.Shorten(v)), "a port from 1 to 65535")
	}
}

func validateProbe(c checker, path, name string, p *Probe) {
	switch {
	case !isIdentifier(name):
		c.key(path, fmt.Sprintf("probe name %q cannot be read in an expression", strictyaml.Shorten(name)),
			fmt.Sprintf("letters, digits and _, not starting with a digit, e.g. %s", strings.NewReplacer("-", "_", ".", "_", " ", "_").Replace(name)))
	case exprReserved(name):
		c.key(path, fmt.Sprintf("probe name %q is taken by the expression language", name), "rename the probe, e.g. "+name+"_probe")
	}
	if p == nil {
		c.key(path, fmt.Sprintf("probe %s has no kind", name), "one of: "+strings.Join(ProbeKinds, ", "))
		return
	}
	if p.Every < 0 {
		c.at(path+".every", "every must be positive", "")
	}
	if p.Timeout < 0 {
		c.at(path+".timeout", "timeout must be positive", "")
	}
	if p.Retries < 0 || p.Retries > MaxProbeRetries {
		c.at(path+".retries", fmt.Sprintf("retries %d must be from 0 to %d", p.Retries, MaxProbeRetries), "retrying more hides the failures the experiment is looking for")
	}
	if p.Every == 0 {
		p.Every = DefaultProbeEvery
	}
	if p.Timeout == 0 {
		p.Timeout = min(DefaultProbeTimeout, p.Every)
	}
	set := setKinds(c, path, []kindField{
		{ProbeHTTP, p.HTTP != nil}, {ProbeTCP, p.TCP != nil}, {ProbePrometheus, p.Prometheus != nil},
		{ProbeKubernetes, p.Kubernetes != nil}, {ProbeExec, p.Exec != nil},
	})
	switch len(set) {
	case 0:
		c.noKind(path, fmt.Sprintf("probe %s has no kind", name), "one of: "+strings.Join(ProbeKinds, ", "))
		return
	case 1:
	default:
		c.key(path+"."+set[1], fmt.Sprintf("probe %s has more than one kind: %s and %s", name, set[0], set[1]),
			"a probe is exactly one of "+strings.Join(ProbeKinds, ", ")+"; declare one probe per kind")
		return
	}
	switch {
	case p.HTTP != nil:
		validateHTTPProbe(c, path+".http", p.HTTP)
	case p.TCP != nil:
		checkHostPort(c, path+".tcp.address", p.TCP.Address)
	case p.Prometheus != nil:
		validatePrometheusProbe(c, path+".prometheus", p.Prometheus)
	case p.Kubernetes != nil:
		dp := path + ".kubernetes.deployment"
		ns, n, ok := strings.Cut(p.Kubernetes.Deployment, "/")
		switch {
		case p.Kubernetes.Deployment == "":
			c.missing(dp, "namespace/name, e.g. shop/checkout")
		case !ok || !dnsLabel.MatchString(ns) || len(ns) > 63 || !dnsSubdomain.MatchString(n) || len(n) > 253:
			c.at(dp, fmt.Sprintf("deployment %q is not namespace/name", strictyaml.Shorten(p.Kubernetes.Deployment)), "e.g. shop/checkout")
		}
	case p.Exec != nil:
		ep := path + ".exec"
		switch {
		case len(p.Exec.Command) == 0:
			c.missing(ep+".command", "the program and its arguments, e.g. command: [pg_isready, -h, 127.0.0.1]")
		case strings.TrimSpace(p.Exec.Command[0]) == "":
			c.at(ep+".command[0]", "the program to run is empty", "")
		case len(p.Exec.Command) == 1 && strings.ContainsAny(p.Exec.Command[0], " \t") && !strings.ContainsAny(p.Exec.Command[0], "/"):
			c.at(ep+".command[0]", fmt.Sprintf("program %q has spaces: the command is run without a shell", strictyaml.Shorten(p.Exec.Command[0])),
				"write each argument as its own item: ["+strings.Join(strings.Fields(p.Exec.Command[0]), ", ")+"]")
		}
		for _, k := range sortedKeys(p.Exec.Env) {
			if !isEnvName(k) {
				c.key(ep+".env."+k, fmt.Sprintf("%q is not an environment variable name", strictyaml.Shorten(k)), "letters, digits and _, not starting with a digit")
			}
		}
	}
}

func validateHTTPProbe(c checker, path string, h *HTTPProbe) {
	checkURL(c, path+".url", h.URL, "http://127.0.0.1:8080/health")
	if h.Method == "" {
		h.Method = "GET"
	}
	if m := strings.ToUpper(h.Method); !slices.Contains(httpMethods, m) {
		c.at(path+".method", fmt.Sprintf("method %q is not an HTTP method", strictyaml.Shorten(h.Method)), "allowed: "+strings.Join(httpMethods, ", "))
	} else {
		h.Method = m
	}
	for _, k := range sortedKeys(h.Headers) {
		if !headerName.MatchString(k) {
			c.key(path+".headers."+k, fmt.Sprintf("%q is not an HTTP header name", strictyaml.Shorten(k)), "letters, digits and - such as X-Request-Id")
		}
	}
	if t := h.TLS; t != nil {
		tp := path + ".tls"
		before := len(*c.probs)
		defer func() {
			// The files are read once the block itself makes sense.
			if len(*c.probs) == before {
				checkTLSFiles(c, tp, t)
			}
		}()
		if u, err := url.Parse(h.URL.Reveal()); err == nil && u.Scheme == "http" {
			c.key(tp, "tls is set, but the url is http://", "use an https:// url, or remove tls")
		}
		switch {
		case t.Cert != "" && t.Key == "":
			c.missing(tp+".key", "a client certificate needs its key")
		case t.Key != "" && t.Cert == "":
			c.missing(tp+".cert", "a key needs its client certificate")
		}
		if t.InsecureSkipVerify && t.CA != "" {
			c.key(tp+".insecureSkipVerify", "insecureSkipVerify makes ca pointless: the certificate is not checked at all", "keep ca and drop insecureSkipVerify")
		}
	}
}

// checkTLSFiles resolves the probe's CA, certificate and key files against
// the experiment file's directory (as kubectl and promtool resolve paths in
// a file) and checks that each exists and parses, so that a run never
// finds out after it started. The resolved paths are what the probe reads.
func checkTLSFiles(c checker, path string, t *TLSConfig) {
	t.CA, t.Cert, t.Key = c.exp.resolvePath(t.CA), c.exp.resolvePath(t.Cert), c.exp.resolvePath(t.Key)
	const where = "a PEM file; a relative path is read from the experiment file's directory"
	if t.CA != "" {
		data, err := os.ReadFile(t.CA)
		switch {
		case err != nil:
			c.at(path+".ca", fmt.Sprintf("cannot read the CA file: %v", unwrapPathError(err, t.CA)), where)
		case !x509.NewCertPool().AppendCertsFromPEM(data):
			c.at(path+".ca", fmt.Sprintf("%s holds no PEM certificate", t.CA), "the CA certificates, each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----")
		}
	}
	if t.Cert == "" || t.Key == "" {
		return
	}
	bad := false
	for _, f := range []struct{ field, file string }{{"cert", t.Cert}, {"key", t.Key}} {
		if _, err := os.Stat(f.file); err != nil {
			bad = true
			c.at(path+"."+f.field, fmt.Sprintf("cannot read the %s file: %v", f.field, unwrapPathError(err, f.file)), where)
		}
	}
	if bad {
		return
	}
	if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
		c.at(path+".cert", fmt.Sprintf("the client certificate %s and key %s do not load as a pair: %v", t.Cert, t.Key, err), "a PEM certificate and the PEM private key it was issued for")
	}
}

// resolveDeliveryDir makes a relative report.delivery.dir relative to the
// experiment file's directory, not to wherever chaos happens to be started:
// the file means the same wherever it is run from.
func resolveDeliveryDir(e *Experiment, d *Delivery) {
	if strings.TrimSpace(d.Dir) != "" {
		d.Dir = e.resolvePath(d.Dir)
	}
}

// unwrapPathError says what went wrong with a file without repeating the
// operation: "/x/ca.pem: no such file or directory".
func unwrapPathError(err error, file string) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return file + ": " + pe.Err.Error()
	}
	return err.Error()
}

// resolvePath resolves a path written in the experiment file against the
// file's directory; absolute and empty paths are returned as they are.
func (e *Experiment) resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(e.File), p)
}

func validatePrometheusProbe(c checker, path string, p *PrometheusProbe) {
	checkURL(c, path+".url", p.URL, "http://127.0.0.1:9090")
	if strings.TrimSpace(p.Query) == "" {
		c.missing(path+".query", "an instant PromQL query, e.g. sum(rate(http_requests_total{code=~\"5..\"}[1m]))")
	} else if msg := checkBalanced(p.Query); msg != "" {
		c.at(path+".query", "query "+msg, "PromQL brackets and quotes must be balanced")
	}
	if a := p.Auth; a != nil {
		ap := path + ".auth"
		modes := setKinds(c, ap, []kindField{{"bearer", c.exp.Has(ap + ".bearer")}, {"basic", a.Basic != nil}})
		switch len(modes) {
		case 0:
			c.noKind(ap, "auth needs bearer or basic", "e.g. auth: {bearer: ${env:PROMETHEUS_TOKEN}}")
		case 2:
			c.key(ap+".basic", "auth has both bearer and basic", "use one of them")
		default:
			if a.Basic != nil {
				if a.Basic.Username.IsZero() {
					c.missing(ap+".basic.username", "")
				}
				if a.Basic.Password.IsZero() {
					c.missing(ap+".basic.password", "write password: ${env:NAME} to keep it out of the file")
				}
			} else if a.Bearer.IsZero() {
				c.at(ap+".bearer", "bearer token is empty", "write bearer: ${env:NAME}")
			}
		}
	}
}

// checkBalanced says where the brackets or quotes of a query do not match.
func checkBalanced(q string) string {
	var stack []rune
	var quote rune
	escaped := false
	for _, r := range q {
		if quote != 0 {
			switch {
			case escaped:
				escaped = false
			case r == '\\' && quote != '`':
				escaped = true
			case r == quote:
				quote = 0
			}
			continue
		}
		switch r {
		case '"', '\'', '`':
			quote = r
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return fmt.Sprintf("has an unmatched %c", r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return fmt.Sprintf("has an unclosed %c", quote)
	}
	if len(stack) > 0 {
		return fmt.Sprintf("has an unclosed %c", stack[len(stack)-1])
	}
	return ""
}

func checkURL(c checker, path string, v Secret, example string) {
	if v.IsZero() {
		c.missing(path, "e.g. "+example)
		return
	}
	u, err := url.Parse(v.Reveal())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.at(path, quoteValue(v)+" is not an http or https URL", "e.g. "+example)
	}
}

func checkEmail(c checker, path, v string) {
	a, err := mail.ParseAddress(v)
	if err != nil || a.Name != "" || !strings.Contains(a.Address, ".") && !strings.HasSuffix(a.Address, "@localhost") {
		c.at(path, fmt.Sprintf("%q is not an e-mail address", strictyaml.Shorten(v)), "e.g. payments-oncall@example.com")
	}
}

func validateFault(c checker, path string, f *Fault, targets, plugins []string) {
	if f == nil {
		c.at(path, "fault is empty", "e.g. {plugin: latency, target: upstream, with: {delay: 200ms}, for: 30s}")
		return
	}
	switch {
	case f.Plugin == "":
		c.missing(path+".plugin", strictyaml.HintList(plugins))
	case plugins != nil && !slices.Contains(plugins, f.Plugin):
		c.at(path+".plugin", fmt.Sprintf("unknown plugin %q", strictyaml.Shorten(f.Plugin)), strictyaml.DidYouMean(f.Plugin, plugins, strictyaml.HintList(plugins)))
	}
	switch {
	case f.Target == "":
		c.missing(path+".target", strictyaml.HintList(targets))
	case targets != nil && !slices.Contains(targets, f.Target):
		c.at(path+".target", fmt.Sprintf("target %q is not declared under spec.targets", strictyaml.Shorten(f.Target)), strictyaml.DidYouMean(f.Target, targets, strictyaml.HintList(targets)))
	}
	if f.After < 0 {
		c.at(path+".after", "after must not be negative", "")
	}
	if f.For < 0 {
		c.at(path+".for", "for must not be negative", "")
	}
}

func validateErrorBudget(c checker, path string, b *ErrorBudget, probes map[string]*Probe) {
	switch {
	case !c.exp.Has(path + ".slo"):
		c.missing(path+".slo", "the service's objective, e.g. slo: 99.9%")
	case b.SLO > 0 && b.SLO <= 1:
		c.at(path+".slo", fmt.Sprintf("slo %s is not a plausible objective", b.SLO), fmt.Sprintf("write it in percent: %s", Percent(float64(b.SLO)*100)))
	case b.SLO <= 0 || b.SLO >= 100:
		c.at(path+".slo", fmt.Sprintf("slo %s must be more than 0%% and less than 100%%", b.SLO), "an SLO of 100% has no error budget to spend")
	}
	switch {
	case !c.exp.Has(path + ".window"):
		c.missing(path+".window", "the SLO's window, e.g. window: 30d")
	case b.Window <= 0:
		c.at(path+".window", "window must be positive", "e.g. 30d")
	}
	switch {
	case !c.exp.Has(path + ".maxSpend"):
		c.missing(path+".maxSpend", "the share of the error budget the experiment may spend, e.g. maxSpend: 2%")
	case b.MaxSpend <= 0 || b.MaxSpend > 100:
		c.at(path+".maxSpend", fmt.Sprintf("maxSpend %s must be more than 0%% and at most 100%%", b.MaxSpend), "e.g. 2%")
	}
	names := sortedKeys(probes)
	for i, name := range b.Probes {
		if _, ok := probes[name]; !ok {
			c.at(fmt.Sprintf("%s.probes[%d]", path, i), fmt.Sprintf("probe %q is not declared under spec.probes", strictyaml.Shorten(name)), strictyaml.DidYouMean(name, names, strictyaml.HintList(names)))
		}
	}
}

func validateSafety(c checker, s *Spec) {
	sf := &s.Safety
	const p = "spec.safety"
	switch {
	case sf.MaxDuration < 0:
		c.at(p+".maxDuration", "maxDuration must be positive", "")
	case sf.MaxDuration > 0 && sf.MaxDuration <= s.FaultPhase():
		c.at(p+".maxDuration",
			fmt.Sprintf("maxDuration %s does not leave room for the faults, which run for %s", sf.MaxDuration, s.FaultPhase()),
			"make maxDuration longer than the last fault's after + for")
	}
	if c.exp.Has(p+".maxTargets") && sf.MaxTargets < 1 {
		c.at(p+".maxTargets", fmt.Sprintf("maxTargets %d must be at least 1", sf.MaxTargets), "")
	}
	if c.exp.Has(p+".maxPercent") && (sf.MaxPercent <= 0 || sf.MaxPercent > 100) {
		c.at(p+".maxPercent", fmt.Sprintf("maxPercent %s must be more than 0%% and at most 100%%", sf.MaxPercent), "e.g. 50%")
	}
	for _, list := range []struct {
		name  string
		names []string
	}{{"allowedNamespaces", sf.AllowedNamespaces}, {"protectedNamespaces", sf.ProtectedNamespaces}} {
		for i, ns := range list.names {
			if len(ns) > 63 || !dnsLabel.MatchString(ns) {
				c.at(fmt.Sprintf("%s.%s[%d]", p, list.name, i), fmt.Sprintf("%q is not a valid Kubernetes namespace", strictyaml.Shorten(ns)), "lowercase letters, digits and '-'")
			}
		}
	}
	for i, ns := range sf.ProtectedNamespaces {
		if slices.Contains(sf.AllowedNamespaces, ns) {
			c.at(fmt.Sprintf("%s.protectedNamespaces[%d]", p, i), fmt.Sprintf("namespace %s is both allowed and protected", ns), "protected wins; remove it from one of the lists")
		}
	}
	switch {
	case sf.LeaseTTL < 0 || sf.LeaseTTL > 0 && sf.LeaseTTL < MinLeaseTTL:
		c.at(p+".leaseTTL", fmt.Sprintf("leaseTTL %s is too short: a plugin must be able to renew within it", sf.LeaseTTL), "at least "+MinLeaseTTL.String()+"; the default is "+DefaultLeaseTTL.String())
	case sf.LeaseTTL == 0 && DefaultLeaseTTL > sf.EffectiveMaxDuration():
		// The file does not say leaseTTL: say where the 10s comes from and
		// how to change it, at the maxDuration that conflicts with it.
		c.at(p+".maxDuration", fmt.Sprintf("maxDuration %s is shorter than the default leaseTTL %s: a fault could outlive the run if chaos died", sf.EffectiveMaxDuration(), DefaultLeaseTTL),
			fmt.Sprintf("set safety.leaseTTL shorter than maxDuration (at least %s), e.g. leaseTTL: %s, or make maxDuration longer than %s", MinLeaseTTL, suggestLeaseTTL(sf.EffectiveMaxDuration()), DefaultLeaseTTL))
	case sf.EffectiveLeaseTTL() > sf.EffectiveMaxDuration():
		c.at(p+".leaseTTL", fmt.Sprintf("leaseTTL %s is longer than maxDuration %s: a fault could outlive the run if chaos died", sf.EffectiveLeaseTTL(), sf.EffectiveMaxDuration()),
			"make leaseTTL shorter than maxDuration")
	}
	checkBlastRadius(c, s)
}

// suggestLeaseTTL is a leaseTTL that fits a maxDuration: a third of it,
// in whole seconds, and never below the minimum.
func suggestLeaseTTL(maxDuration time.Duration) time.Duration {
	return max((maxDuration / 3).Truncate(time.Second), MinLeaseTTL)
}

// checkBlastRadius compares what the faults will act on at least with the
// caps of the safety section, so that a file that can only be refused at
// run time is refused now.
func checkBlastRadius(c checker, s *Spec) {
	sf := &s.Safety
	faulted := map[string]bool{}
	for _, f := range s.Faults {
		if f != nil {
			faulted[f.Target] = true
		}
	}
	total, each := 0, false
	var parts []string
	for _, name := range sortedKeys(s.Targets) {
		t := s.Targets[name]
		if t == nil || !faulted[name] {
			continue
		}
		n := 1
		if k := t.Kubernetes; k != nil {
			path := "spec.targets." + name + ".kubernetes.pick"
			if k.Pick.Count > 0 {
				n = k.Pick.Count
			}
			if sf.MaxTargets > 0 && k.Pick.Count > sf.MaxTargets {
				each = true
				c.at(path+".count", fmt.Sprintf("pick count %d is more than safety.maxTargets %d", k.Pick.Count, sf.MaxTargets), "lower the count or raise maxTargets")
			}
			if sf.MaxPercent > 0 && k.Pick.Percent > sf.MaxPercent {
				c.at(path+".percent", fmt.Sprintf("pick percent %s is more than safety.maxPercent %s", k.Pick.Percent, sf.MaxPercent), "lower the percent or raise maxPercent")
			}
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s: %d", name, n))
	}
	if sf.MaxTargets > 0 && total > sf.MaxTargets && !each {
		c.at("spec.safety.maxTargets", fmt.Sprintf("the faults act on at least %d targets (%s), more than maxTargets %d", total, strings.Join(parts, ", "), sf.MaxTargets), "")
	}
}

func validateReport(c checker, r *Report) {
	const p = "spec.report"
	seen := map[string]bool{}
	for i, f := range r.Formats {
		path := fmt.Sprintf("%s.formats[%d]", p, i)
		switch {
		case !slices.Contains(ReportFormats, f):
			c.at(path, fmt.Sprintf("unknown report format %q", strictyaml.Shorten(f)), strictyaml.DidYouMean(f, ReportFormats, strictyaml.HintList(ReportFormats)))
		case seen[f]:
			c.at(path, fmt.Sprintf("report format %s is listed twice", f), "")
		}
		seen[f] = true
	}
	if len(r.Formats) == 0 {
		r.Formats = slices.Clone(DefaultReportFormats)
	}
	d := &r.Delivery
	if c.exp.Has(p+".delivery.dir") && strings.TrimSpace(d.Dir) == "" {
		c.at(p+".delivery.dir", "dir is empty", "a directory, e.g. reports/")
	}
	resolveDeliveryDir(c.exp, d)
	if !d.Webhook.IsZero() {
		checkURL(c, p+".delivery.webhook", d.Webhook, "https://hooks.slack.com/services/T000/B000/XXXX")
	}
	if m := d.Email; m != nil {
		ep := p + ".delivery.email"
		if len(m.To) == 0 {
			c.missing(ep+".to", "a list of addresses, e.g. to: [payments-oncall@example.com]")
		}
		for i, to := range m.To {
			checkEmail(c, fmt.Sprintf("%s.to[%d]", ep, i), to)
		}
		if !c.exp.Has(ep + ".smtp") {
			c.missing(ep+".smtp", "the mail server, e.g. smtp: {address: smtp.example.com:587}")
		} else {
			checkHostPort(c, ep+".smtp.address", m.SMTP.Address)
		}
		if m.SMTP.From != "" {
			checkEmail(c, ep+".smtp.from", m.SMTP.From)
		}
		if !m.SMTP.Password.IsZero() && m.SMTP.Username.IsZero() {
			c.missing(ep+".smtp.username", "a password needs a username")
		}
	}
}

func compileInto(c checker, x *Expression, env *exprEnv, path string) {
	if c.broken(path) || env == nil {
		return
	}
	if x == nil {
		c.at(path, "expression is empty", "e.g. checkout.status == 200")
		return
	}
	*c.probs = append(*c.probs, x.compile(env, path)...)
}

// Suggest is the did-you-mean hint for got among known: `did you mean "x"?`
// when one is close, else "allowed: a, b, c" (empty when known is).
func Suggest(got string, known []string) string { return strictyaml.Suggest(got, known) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validateProbeBounds checks what bounds a probe's cost: how often it
// observes (every has a floor) and how much one observation may read
// (maxResponse). The timeout has no floor of its own: observations of one
// probe never overlap, so every bounds the rate whatever the timeout.
func validateProbeBounds(c checker, path string, p *Probe, opts Options) {
	if p == nil {
		return
	}
	floor := MinProbeEvery
	if opts.MinProbeEvery > 0 {
		floor = opts.MinProbeEvery
	}
	if p.Every > 0 && p.Every < floor {
		c.at(path+".every", fmt.Sprintf("every %s is too short: a probe may observe at most every %s", p.Every, floor),
			fmt.Sprintf("at least %s; the default is %s", floor, DefaultProbeEvery))
	}
	if c.exp.Has(path+".maxResponse") && (p.MaxResponse < MinMaxResponse || p.MaxResponse > MaxMaxResponse) {
		c.at(path+".maxResponse", fmt.Sprintf("maxResponse %s must be from %s to %s", p.MaxResponse, MinMaxResponse, MaxMaxResponse),
			"the default is "+DefaultMaxResponse.String())
	}
}
