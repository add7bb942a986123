package experiments

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// namePattern is what a metadata.name may look like: it ends up in file
// names, report titles and, later, Kubernetes object names.
var namePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// httpMethods are the methods an http probe may use.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// checker collects problems for one file.
type checker struct {
	probs *[]Problem
}

func (c checker) add(pos Pos, path, msg, hint string) {
	*c.probs = append(*c.probs, Problem{Pos: pos, Path: path, Message: msg, Hint: hint})
}

// validate checks what decoding cannot: required fields, references between
// sections, value ranges, and expressions. Defaults are applied here too.
func validate(e *Experiment, opts Options, probs *[]Problem) {
	c := checker{probs: probs}
	if e.APIVersion != APIVersion {
		c.add(e.Pos, "apiVersion", fmt.Sprintf("apiVersion must be %q, got %q", APIVersion, e.APIVersion), "")
	}
	if e.Kind != KindExperiment {
		c.add(e.Pos, "kind", fmt.Sprintf("kind must be %q, got %q", KindExperiment, e.Kind), "")
	}
	m := &e.Metadata
	switch {
	case m.Name == "":
		c.add(orPos(m.Pos, e.Pos), "metadata.name", "metadata.name is required", "a short name like checkout-survives-slow-upstream")
	case len(m.Name) > 63 || !namePattern.MatchString(m.Name):
		c.add(m.Pos, "metadata.name", fmt.Sprintf("metadata.name %q must be lowercase letters, digits and '-', at most 63 characters", m.Name), "")
	}
	if m.Owner.Team == "" {
		c.add(orPos(m.Owner.Pos, orPos(m.Pos, e.Pos)), "metadata.owner.team", "metadata.owner.team is required: the report is addressed to it", "")
	}
	if m.Owner.Email != "" && !strings.Contains(m.Owner.Email, "@") {
		c.add(m.Owner.Pos, "metadata.owner.email", fmt.Sprintf("%q is not an e-mail address", m.Owner.Email), "")
	}
	if m.Owner.Webhook != "" {
		checkURL(c, m.Owner.Pos, "metadata.owner.webhook", m.Owner.Webhook)
	}

	s := &e.Spec
	specPos := orPos(s.Pos, e.Pos)
	if strings.TrimSpace(s.Hypothesis) == "" {
		c.add(specPos, "spec.hypothesis", "spec.hypothesis is required: say what you expect to hold", "")
	}
	if len(s.Targets) == 0 {
		c.add(specPos, "spec.targets", "spec.targets must name at least one target", "")
	}
	for _, name := range sortedKeys(s.Targets) {
		validateTarget(c, "spec.targets."+name, s.Targets[name])
	}
	if len(s.Probes) == 0 {
		c.add(specPos, "spec.probes", "spec.probes must declare at least one probe", "")
	}
	for _, name := range sortedKeys(s.Probes) {
		validateProbe(c, "spec.probes."+name, s.Probes[name])
	}

	env := compileEnv(s.Probes)
	if len(s.SteadyState) == 0 {
		c.add(specPos, "spec.steadyState", "spec.steadyState must have at least one expression", "")
	}
	for i, x := range s.SteadyState {
		compileInto(c, x, env, fmt.Sprintf("spec.steadyState[%d]", i))
	}
	for i, x := range s.Budget.AbortWhen {
		compileInto(c, x, env, fmt.Sprintf("spec.budget.abortWhen[%d]", i))
	}

	if len(s.Faults) == 0 {
		c.add(specPos, "spec.faults", "spec.faults must list at least one fault", "")
	}
	targetNames := sortedKeys(s.Targets)
	for i, f := range s.Faults {
		validateFault(c, fmt.Sprintf("spec.faults[%d]", i), f, targetNames, opts.Plugins)
	}
	if len(s.Faults) > 0 && s.FaultPhase() == 0 {
		c.add(s.Faults[0].Pos, "spec.faults", "no fault has a duration: give at least one fault `for`", "for example for: 30s")
	}
	if s.Safety.MaxDuration < 0 {
		c.add(s.Safety.Pos, "spec.safety.maxDuration", "maxDuration must be positive", "")
	} else if s.Safety.MaxDuration > 0 && s.Safety.MaxDuration <= s.FaultPhase() {
		c.add(s.Safety.Pos, "spec.safety.maxDuration",
			fmt.Sprintf("maxDuration %s does not leave room for the faults, which run for %s", s.Safety.MaxDuration, s.FaultPhase()),
			"make maxDuration longer than the last fault's after + for")
	}
}

func validateTarget(c checker, path string, t *Target) {
	if t == nil {
		return
	}
	if t.Endpoint == nil {
		c.add(t.Pos, path, "target has no kind", "allowed: endpoint")
		return
	}
	ep := t.Endpoint
	checkHostPort(c, ep.Pos, path+".endpoint.listen", ep.Listen)
	checkHostPort(c, ep.Pos, path+".endpoint.upstream", ep.Upstream)
	if ep.Listen != "" && ep.Listen == ep.Upstream {
		c.add(ep.Pos, path+".endpoint", "listen and upstream are the same address: traffic would loop", "")
	}
}

func checkHostPort(c checker, pos Pos, path, v string) {
	field := path[strings.LastIndexByte(path, '.')+1:]
	if v == "" {
		c.add(pos, path, field+" is required", "host:port, e.g. 127.0.0.1:8080")
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		c.add(pos, path, fmt.Sprintf("%s %q is not host:port", field, v), "e.g. 127.0.0.1:8080")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		c.add(pos, path, fmt.Sprintf("%s %q has no valid port", field, v), "a port from 1 to 65535")
	}
}

func validateProbe(c checker, path string, p *Probe) {
	if p == nil {
		return
	}
	if p.Every < 0 || p.Timeout < 0 {
		c.add(p.Pos, path, "every and timeout must be positive", "")
	}
	if p.Every == 0 {
		p.Every = DefaultProbeEvery
	}
	if p.Timeout == 0 {
		p.Timeout = min(DefaultProbeTimeout, p.Every)
	}
	if p.HTTP == nil {
		c.add(p.Pos, path, "probe has no kind", "allowed: http")
		return
	}
	h := p.HTTP
	checkURL(c, h.Pos, path+".http.url", h.URL)
	if h.Method == "" {
		h.Method = "GET"
	}
	h.Method = strings.ToUpper(h.Method)
	if !slices.Contains(httpMethods, h.Method) {
		c.add(h.Pos, path+".http.method", fmt.Sprintf("method %q is not an HTTP method", h.Method), "allowed: "+strings.Join(httpMethods, ", "))
	}
}

func checkURL(c checker, pos Pos, path, v string) {
	if v == "" {
		c.add(pos, path, "url is required", "")
		return
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.add(pos, path, fmt.Sprintf("%q is not an http or https URL", v), "e.g. http://127.0.0.1:8080/health")
	}
}

func validateFault(c checker, path string, f *Fault, targets, plugins []string) {
	if f == nil {
		return
	}
	switch {
	case f.Plugin == "":
		c.add(f.Pos, path+".plugin", "plugin is required", hintList(plugins))
	case plugins != nil && !slices.Contains(plugins, f.Plugin):
		c.add(f.Pos, path+".plugin", fmt.Sprintf("unknown plugin %q", f.Plugin), didYouMean(f.Plugin, plugins, hintList(plugins)))
	}
	switch {
	case f.Target == "":
		c.add(f.Pos, path+".target", "target is required", hintList(targets))
	case !slices.Contains(targets, f.Target):
		c.add(f.Pos, path+".target", fmt.Sprintf("target %q is not declared under spec.targets", f.Target), didYouMean(f.Target, targets, hintList(targets)))
	}
	if f.After < 0 || f.For < 0 {
		c.add(f.Pos, path, "after and for must not be negative", "")
	}
}

func compileInto(c checker, x *Expression, env Env, path string) {
	if x == nil {
		return
	}
	if p := x.compile(env, path); p != nil {
		*c.probs = append(*c.probs, *p)
	}
}

// didYouMean suggests the closest of known to got, or falls back.
func didYouMean(got string, known []string, fallback string) string {
	if s := closest(got, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return fallback
}

func hintList(known []string) string {
	if len(known) == 0 {
		return ""
	}
	return "allowed: " + strings.Join(known, ", ")
}

func orPos(p, fallback Pos) Pos {
	if p.Line == 0 {
		return fallback
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closest returns the name in known that got was most likely meant to be: a
// case-insensitive match, or one at most two edits away and not so short
// that two edits make it another word. It returns "" when none is close.
func closest(got string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, got) {
			return k
		}
	}
	best, bestD := "", 3
	for _, k := range known {
		d := yamlDistance(got, k)
		if d < bestD && 2*d <= len([]rune(k)) {
			best, bestD = k, d
		}
	}
	return best
}
