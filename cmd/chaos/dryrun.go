package main

import (
	"context"
	"io"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// dryRun prints the plan after every check a run makes before injecting.
// stdout and stderr are the run's redacting writers: the plan prints every
// secret-bearing value as ***, and a plugin that refuses a fault may quote
// the parameter it refused, on its stderr or in its error.
func dryRun(ctx context.Context, exp *experiments.Experiment, ledger engine.Ledger, stdout, stderr io.Writer) error {
	err := engine.DryRun(ctx, exp, engine.Options{Plugins: engine.ExecPlugins{Command: selfPlugin, Log: stderr}, Ledger: ledger}, stdout)
	if err != nil {
		return &exitError{code: reports.Invalid.ExitCode(), msg: experiments.Redact(err.Error(), exp.Secrets())}
	}
	return nil
}
