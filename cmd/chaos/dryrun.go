package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// dryRun prints the plan after every check a run makes before injecting.
// A run that would not go ahead exits with the code of the verdict it would
// get: refused (5) when the environment says no, invalid (3) for the file.
func dryRun(ctx context.Context, exp *experiments.Experiment, ledger engine.Ledger, stdout io.Writer) error {
	err := engine.DryRun(ctx, exp, engine.Options{Plugins: engine.ExecPlugins{Command: selfPlugin, Log: os.Stderr}, Ledger: ledger}, stdout)
	if err == nil {
		return nil
	}
	code := reports.Invalid.ExitCode()
	if pe := (*engine.PlanError)(nil); errors.As(err, &pe) && pe.Verdict != "" {
		code = pe.Verdict.ExitCode()
	}
	return &exitError{code: code, msg: err.Error()}
}
