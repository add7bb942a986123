// Package builtin lists the fault plugins that ship inside the chaos binary.
// The binary re-executes itself as `chaos plugin serve NAME` to run one, so
// a built-in plugin is still its own process.
package builtin

import (
	"sort"

	"github.com/chaos-run/chaos/plugins/cpustress"
	"github.com/chaos-run/chaos/plugins/latency"
	"github.com/chaos-run/chaos/plugins/podkill"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// Faults returns a new set of constructors of the built-in plugins, by name.
// It is a function, not a package variable, so nothing can change the set
// behind another caller's back.
func Faults() map[string]func() sdk.Fault {
	return map[string]func() sdk.Fault{
		"cpustress": func() sdk.Fault { return cpustress.New() },
		"latency":   func() sdk.Fault { return latency.New() },
		"podkill":   func() sdk.Fault { return podkill.New() },
	}
}

// Names returns the built-in plugin names, sorted.
func Names() []string {
	f := Faults()
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
