package main

import (
	"context"
	"errors"
	"io"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// dryRun prints the plan after every check a run makes before injecting.
// stdout and stderr are the run's redacting writers: the plan prints every
// secret-bearing value as ***, and a plugin that refuses a fault may quote
// the parameter it refused, on its stderr or in its error. A run that would
// not go ahead exits with the code of the verdict it would get: refused (5)
// when the environment says no, invalid (3) for the file.
func dryRun(ctx context.Context, exp *experiments.Experiment, ledger engine.Ledger, stdout, stderr io.Writer) error {
	err := engine.DryRun(ctx, exp, engine.Options{Plugins: engine.ExecPlugins{Command: selfPlugin, Log: stderr}, NewProber: newProber, Ledger: ledger}, stdout)
	if err == nil {
		return nil
	}
	code := reports.Invalid.ExitCode()
	if pe := (*engine.PlanError)(nil); errors.As(err, &pe) && pe.Verdict != "" {
		code = pe.Verdict.ExitCode()
	}
	return &exitError{code: code, msg: experiments.Redact(err.Error(), exp.Secrets())}
}
