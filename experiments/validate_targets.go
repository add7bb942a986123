package experiments

// This file checks spec.targets: one kind per target, and what each kind
// needs (endpoints are checked further in validate_endpoints.go).

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

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
