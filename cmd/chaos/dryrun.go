package main

import (
	"context"
	"io"
	"os"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// dryRun prints the plan after every check a run makes before injecting.
func dryRun(ctx context.Context, exp *experiments.Experiment, ledger engine.Ledger, stdout io.Writer) error {
	err := engine.DryRun(ctx, exp, engine.Options{Plugins: engine.ExecPlugins{Command: selfPlugin, Log: os.Stderr}, Ledger: ledger}, stdout)
	if err != nil {
		return &exitError{code: reports.Invalid.ExitCode(), msg: err.Error()}
	}
	return nil
}
