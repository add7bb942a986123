package experiments

// This file checks spec.budget.errorBudget.

import (
	"fmt"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

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
