package experiments

// This file checks spec.safety and the blast radius of the targets under it.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

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
