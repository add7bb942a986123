package experiments

import (
	"fmt"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

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

// resolvePath resolves a path written in the experiment file against the
// file's directory; absolute and empty paths are returned as they are.
func (e *Experiment) resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(e.File), p)
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
