package engine

import (
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/probes"
)

// builtinProbers is the default of Options.NewProber: the probe kinds of
// package probes. The engine itself only ever calls Probe (and Close).
func builtinProbers(name string, p *experiments.Probe) (Prober, error) {
	pr, err := probes.New(name, p)
	if err != nil {
		return nil, err
	}
	return pr, nil
}

// closeProber releases what a prober holds (idle connections), if it holds
// anything: a run inside a long-lived process must not leave them behind.
func closeProber(p Prober) { probes.Close(p) }
