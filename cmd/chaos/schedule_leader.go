package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/engine/scheduler"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// causeLeaseLost: the scheduler stopped because its replica lost the Lease.
const causeLeaseLost reports.Cause = "lease-lost"

// electSchedule runs the schedule only while this replica holds the Lease.
// On taking the lead it first runs the recover step on the shared state
// directory: the runs a dead leader held are in its ledger, and that
// leader's flock on them died with its process, so Recover sees their
// runner gone and reverts them; a live runner's entries are left alone.
func electSchedule(ctx context.Context, c *cli.Context, s *experiments.Schedule, o scheduleOptions) error {
	d, r, p := c.Duration("lease-duration"), c.Duration("renew-deadline"), c.Duration("retry-period")
	if !(d > r && r > p && p > 0) {
		return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf(
			"--lease-duration %s, --renew-deadline %s, --retry-period %s: each must be longer than the next, and all above zero", d, r, p)}
	}
	cfg, err := o.kube.Load()
	if err != nil {
		return &exitError{code: reports.Invalid.ExitCode(), msg: "--leader-elect: " + err.Error()}
	}
	dir, err := stateDir(c)
	if err != nil {
		return err
	}
	o.stateDir = dir
	id := scheduler.Identity()
	log := o.log.With("identity", id)
	o.log = log
	err = scheduler.RunElected(ctx, scheduler.Leader{
		Config: cfg, Namespace: c.String("lease-namespace"), Name: c.String("lease-name"), Identity: id,
		LeaseDuration: d, RenewDeadline: r, RetryPeriod: p, Log: log,
	}, func(ctx context.Context, leading scheduler.Leading) error {
		o.claims = fireClaims(dir, s, id, leading)
		if err := recoverDeadLeader(ctx, dir, o); err != nil {
			// Scheduling over faults nobody reverted is not safe: stop,
			// and let the next replica (or a person) try again.
			return err
		}
		return serveSchedule(ctx, s, o)
	})
	if errors.Is(err, scheduler.ErrLeaseLost) {
		log.Error("stopped", "cause", causeLeaseLost, "err", err)
		return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
	}
	return err
}

// recoverWait bounds the recover step a new leader runs: every plugin call
// in it honours the context, and every wait for the ledger's lock is
// bounded by safety.LedgerLockWait (a runner stopped while it writes the
// ledger fails the step, naming itself, instead of holding it for ever).
const recoverWait = 5 * time.Minute

// recoverDeadLeader reverts every fault the ledger holds for a runner that
// is gone: a dead leader's runs. A runner still alive (its flock held: a
// leader that lost the Lease but not its process) keeps its entries: it
// reverts them itself, and the target locks keep this leader's runs off
// its targets meanwhile.
func recoverDeadLeader(ctx context.Context, dir string, o scheduleOptions) error {
	ledger, err := safety.OpenLedger(dir)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	runner := &engine.Runner{StateDir: dir, PluginCommand: pluginCommandWith(o.kube, selfPlugin), PluginNames: builtin.Names(), Log: o.stderr, LogLevel: o.logLevel}
	rctx, cancel := context.WithTimeout(ctx, recoverWait)
	defer cancel()
	res, err := runner.Recover(rctx, engine.RecoverOptions{Ledger: ledger, Out: o.stderr,
		CallTimeout: engine.DefaultRecoverCallTimeout, Grace: engine.DefaultRecoverGrace})
	if err != nil {
		return fmt.Errorf("recover the dead leader's runs: %w", err)
	}
	o.log.Info("recovered", "failed", res.Failed, "unreadable", res.Unreadable)
	if res.Failed > 0 || res.Unreadable > 0 {
		return fmt.Errorf("recover the dead leader's runs: %d entries still open, %d unreadable; run `chaos recover --state-dir %s`", res.Failed, res.Unreadable, dir)
	}
	return nil
}
