package experiments

// This file checks spec.probes: one kind per probe, its fields, the files an
// https probe names, and what bounds its cost.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// httpMethods are the methods an http probe may use.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

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
	kinds := probeKinds()
	fields := make([]kindField, len(kinds))
	for i, k := range kinds {
		fields[i] = kindField{k.Name, k.set(p)}
	}
	set := setKinds(c, path, fields)
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
	if k, ok := p.kind(); ok {
		k.validate(c, path, p)
	}
}

// validateKubernetesProbe checks a kubernetes probe: exactly one of a
// workload (namespace/name) or pods (namespace and selectors), and its
// restart window.
func validateKubernetesProbe(c checker, path string, p *Probe) {
	kp := path + ".kubernetes"
	k := p.Kubernetes
	kinds := setKinds(c, kp, []kindField{
		{KubernetesDeployment, c.exp.Has(kp + ".deployment")},
		{KubernetesStatefulSet, c.exp.Has(kp + ".statefulSet")},
		{KubernetesDaemonSet, c.exp.Has(kp + ".daemonSet")},
		{KubernetesPodsKind, k.Pods != nil},
	})
	const one = "deployment, statefulSet, daemonSet or pods"
	switch len(kinds) {
	case 0:
		c.noKind(kp, "kubernetes probe watches nothing", "set one of "+one+", e.g. deployment: shop/checkout")
	case 1:
		if kinds[0] == KubernetesPodsKind {
			validateKubernetesPods(c, kp+".pods", k.Pods)
			break
		}
		wp := kp + "." + kinds[0]
		w := k.Workload()
		ns, n, ok := strings.Cut(w, "/")
		switch {
		case w == "":
			c.at(wp, kinds[0]+" is empty", "namespace/name, e.g. shop/checkout")
		case !ok || !dnsLabel.MatchString(ns) || len(ns) > 63 || !dnsSubdomain.MatchString(n) || len(n) > 253:
			c.at(wp, fmt.Sprintf("%s %q is not namespace/name", kinds[0], strictyaml.Shorten(w)), "e.g. shop/checkout")
		}
	default:
		c.key(kp+"."+kinds[1], fmt.Sprintf("kubernetes probe has both %s and %s", kinds[0], kinds[1]),
			"a kubernetes probe watches exactly one of "+one+"; declare one probe for each")
	}
	if c.exp.Has(kp + ".restartWindow") {
		if w := k.RestartWindow; w < MinRestartWindow || w > MaxRestartWindow {
			c.at(kp+".restartWindow", fmt.Sprintf("restartWindow %s must be from %s to %s", w, MinRestartWindow, MaxRestartWindow),
				"restarts counts container restarts seen within this window")
		}
	}
	if k.RestartWindow == 0 {
		k.RestartWindow = DefaultRestartWindow
	}
}

// validateKubernetesPods checks a kubernetes probe's pods: a namespace, a
// label selector and an optional field selector, each as the API server
// would take it, so a typo is found before the run rather than as an
// observation error in the middle of it.
func validateKubernetesPods(c checker, path string, p *KubernetesPods) {
	switch {
	case p.Namespace == "":
		c.missing(path+".namespace", "the namespace of the pods, e.g. namespace: shop")
	case len(p.Namespace) > 63 || !dnsLabel.MatchString(p.Namespace):
		c.at(path+".namespace", fmt.Sprintf("namespace %q is not a valid Kubernetes namespace", strictyaml.Shorten(p.Namespace)), "lowercase letters, digits and '-', at most 63 characters")
	}
	switch {
	case strings.TrimSpace(p.Selector) == "":
		c.missing(path+".selector", "a label selector such as app=checkout")
	default:
		if msg := checkSelector(p.Selector); msg != "" {
			c.at(path+".selector", fmt.Sprintf("selector %q is not a label selector: %s", strictyaml.Shorten(p.Selector), msg), "e.g. app=checkout,tier in (web, api),!canary")
		}
	}
	if c.exp.Has(path + ".fieldSelector") {
		if msg, hint := checkPodFieldSelector(p.FieldSelector); msg != "" {
			c.at(path+".fieldSelector", fmt.Sprintf("fieldSelector %q %s", strictyaml.Shorten(p.FieldSelector), msg), hint)
		}
	}
}

// podFields are the fields the API server can select pods by.
var podFields = []string{
	"metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
	"spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName",
}

// checkPodFieldSelector checks a pod field selector (field=value,
// field!=value, comma-separated) and says what is wrong, with a hint.
func checkPodFieldSelector(sel string) (msg, hint string) {
	if strings.TrimSpace(sel) == "" {
		return "is empty", "remove it, or write e.g. spec.nodeName=node-1"
	}
	for _, req := range strings.Split(sel, ",") {
		req = strings.TrimSpace(req)
		m := selectorCmp.FindStringSubmatch(req)
		if m == nil {
			return fmt.Sprintf("has %q, which is not field=value or field!=value", strictyaml.Shorten(req)), "e.g. spec.nodeName=node-1,status.phase!=Succeeded"
		}
		if !slices.Contains(podFields, m[1]) {
			return fmt.Sprintf("selects on %q, which pods cannot be selected by", m[1]),
				strictyaml.DidYouMean(m[1], podFields, "pods can be selected by "+strings.Join(podFields, ", "))
		}
	}
	return "", ""
}

// validateExecProbe checks an exec probe's command and environment.
func validateExecProbe(c checker, path string, p *Probe) {
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

// unwrapPathError says what went wrong with a file without repeating the
// operation: "/x/ca.pem: no such file or directory".
func unwrapPathError(err error, file string) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return file + ": " + pe.Err.Error()
	}
	return err.Error()
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
