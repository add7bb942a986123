package main

import (
	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/probes"
)

// newProber is the probe constructor every command hands the engine: the
// probe kinds this version runs (package probes).
func newProber(name string, p *experiments.Probe) (engine.Prober, error) {
	pr, err := probes.Builtin().New(name, p)
	if err != nil {
		return nil, err
	}
	return pr, nil
}
