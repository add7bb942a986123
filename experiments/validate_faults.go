package experiments

// This file checks spec.faults: plugin, target and schedule. The plugin
// checks its own parameters (engine.ValidatePlugins).

import (
	"fmt"
	"slices"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

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
