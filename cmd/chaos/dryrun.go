package main

import (
	"context"
	"errors"
	"io"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
)

// dryRun prints the plan after every check a run makes before injecting.
// The runner redacts the plan and the plugins' output: the plan prints
// every secret-bearing value as ***, and a plugin that refuses a fault may
// quote the parameter it refused. A run that would not go ahead exits with
// the code of the verdict it would get: refused (5) when the environment
// says no, invalid (3) for the file.
func dryRun(ctx context.Context, runner *engine.Runner, path string, stdout io.Writer) error {
	err := runner.DryRun(ctx, path, stdout)
	if err == nil {
		return nil
	}
	code := reports.Invalid.ExitCode()
	if pe := (*engine.PlanError)(nil); errors.As(err, &pe) && pe.Verdict != "" {
		code = pe.Verdict.ExitCode()
		if pe.Cause == engine.CauseInvalidFile || pe.Cause == engine.CauseUnsafeStateDir || pe.Cause == engine.CauseStateDir {
			return &exitError{code: code, msg: pe.Reason}
		}
	}
	return &exitError{code: code, msg: err.Error()}
}
