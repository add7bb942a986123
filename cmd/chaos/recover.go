package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

var stateDirFlag = &cli.StringFlag{
	Name:    "state-dir",
	Usage:   "where the fault ledger, target locks and kill switch live (`DIR`)",
	EnvVars: []string{"CHAOS_STATE_DIR"},
}

// stateDir returns the state directory the flag names, or the default,
// creating it.
func stateDir(c *cli.Context) (string, error) {
	dir := c.String("state-dir")
	if dir == "" {
		dir = safety.DefaultStateDir()
	}
	if err := safety.EnsureStateDir(dir); err != nil {
		return "", &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--state-dir %s: %v", dir, err)}
	}
	return dir, nil
}

func recoverCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "recover",
		Usage: "revert every fault the ledger still holds open (after a runner was killed)",
		Flags: []cli.Flag{
			stateDirFlag,
			&cli.BoolFlag{Name: "force", Usage: "also revert faults of runs whose runner is still alive"},
		},
		Action: func(c *cli.Context) error {
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			ledger, err := safety.OpenLedger(dir)
			if err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: "open ledger: " + err.Error()}
			}
			left, err := recoverAll(c.Context, ledger, c.Bool("force"), stdout)
			if err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
			}
			if left > 0 {
				return &exitError{code: reports.Error.ExitCode(), msg: fmt.Sprintf("%d fault(s) could not be reverted; see above", left)}
			}
			return nil
		},
	}
}

// recoverAll reverts every open ledger entry whose runner is gone, plugin
// by plugin, faults before the preparations they ride on. It returns how
// many entries are still open afterwards for another reason than a live
// runner.
func recoverAll(ctx context.Context, ledger *safety.Ledger, force bool, out io.Writer) (int, error) {
	entries, err := ledger.Open()
	if err != nil {
		return 0, fmt.Errorf("read ledger: %w", err)
	}
	if len(entries) == 0 {
		_, _ = fmt.Fprintln(out, "nothing to recover: every fault in the ledger is reverted")
		return 0, nil
	}
	byPlugin := map[string][]safety.Entry{}
	for _, e := range entries {
		if !force && runnerAlive(e.RunnerPID) {
			_, _ = fmt.Fprintf(out, "skipped %s: its runner (pid %d) is still running and will revert it; --force to revert anyway\n", e.ID, e.RunnerPID)
			continue
		}
		byPlugin[e.Plugin] = append(byPlugin[e.Plugin], e)
	}
	names := make([]string, 0, len(byPlugin))
	for n := range byPlugin {
		names = append(names, n)
	}
	sort.Strings(names)
	failed := 0
	plugins := engine.ExecPlugins{Command: selfPlugin, Log: os.Stderr}
	for _, name := range names {
		es := byPlugin[name]
		// Faults first: a preparation's revert would also end the faults
		// riding on it, but each revert's report stays true this way.
		sort.SliceStable(es, func(i, j int) bool { return !es[i].Prepared && es[j].Prepared })
		pl, err := plugins.Open(ctx, name)
		if err != nil {
			for _, e := range es {
				_, _ = fmt.Fprintf(out, "FAILED %s: cannot start plugin %s: %v\n", e.ID, name, err)
			}
			failed += len(es)
			continue
		}
		for _, e := range es {
			if e.Handle == "" {
				// The runner died between writing its intent and hearing
				// the plugin's answer. The plugin process died with it
				// (parent-death signal), and with it every fault it held
				// in its own process.
				_ = ledger.Note(e.ID, "recovered: no handle was recorded; the plugin process ended with its runner")
				if err := ledger.Reverted(e.ID); err != nil {
					return failed, err
				}
				_, _ = fmt.Fprintf(out, "closed %s (%s on %s): the runner died before the plugin answered; its plugin process ended with it\n", e.ID, e.Plugin, e.TargetKey)
				continue
			}
			// The old plugin may have outlived its runner (its parent-death
			// signal lost, its own parent check not yet due). It reverts on
			// SIGTERM; make sure it is gone before a fresh plugin's "unknown
			// handle" is taken as "already ended".
			if err := stopOldPlugin(ctx, e.PluginPID); err != nil {
				failed++
				_, _ = fmt.Fprintf(out, "FAILED %s: %v\n", e.ID, err)
				continue
			}
			was, err := pl.Revert(ctx, e.Handle)
			if err != nil {
				failed++
				_ = ledger.Note(e.ID, "recover failed: "+err.Error())
				_, _ = fmt.Fprintf(out, "FAILED %s (%s on %s, handle %s): %v\n", e.ID, e.Plugin, e.TargetKey, e.Handle, err)
				continue
			}
			if err := ledger.Reverted(e.ID); err != nil {
				return failed, err
			}
			state := "it had already ended (lease ran out or its plugin exited)"
			if was {
				state = "it was still in effect"
			}
			_, _ = fmt.Fprintf(out, "reverted %s (%s on %s, handle %s): %s\n", e.ID, e.Plugin, e.TargetKey, e.Handle, state)
		}
		pl.Close()
	}
	return failed, nil
}

// stopOldPlugin sends SIGTERM to a plugin process that is still there and
// waits, bounded, for it to exit.
func stopOldPlugin(ctx context.Context, pid int) error {
	if !isPluginProcess(pid) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // gone meanwhile
	}
	deadline := time.Now().Add(oldPluginGrace)
	for isPluginProcess(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the old plugin process %d did not exit within %s of SIGTERM", pid, oldPluginGrace)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// oldPluginGrace is how long an orphaned plugin gets to revert and exit.
const oldPluginGrace = 35 * time.Second

// isPluginProcess reports whether pid is a live `chaos plugin serve`.
func isPluginProcess(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// A zombie has an empty cmdline and is gone for our purpose.
	return strings.Contains(string(cmdline), "plugin\x00serve")
}

// runnerAlive reports whether pid is a live chaos process.
func runnerAlive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	// A recycled pid that is not chaos is not our runner.
	return strings.Contains(string(cmdline), "chaos")
}

func abortCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "abort",
		Usage: "kill switch: abort every run using this state directory, and refuse new ones until --clear",
		Flags: []cli.Flag{
			stateDirFlag,
			&cli.StringFlag{Name: "reason", Value: "aborted by operator", Usage: "why, for every run's report"},
			&cli.BoolFlag{Name: "clear", Usage: "release the kill switch so runs may start again"},
		},
		Action: func(c *cli.Context) error {
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			if c.Bool("clear") {
				if err := safety.Clear(dir); err != nil {
					return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
				}
				_, _ = fmt.Fprintln(stdout, "kill switch cleared: runs may start again")
				return nil
			}
			if err := safety.Engage(dir, c.String("reason")); err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
			}
			_, _ = fmt.Fprintf(stdout, "kill switch engaged in %s: every run aborts and reverts now; new runs are refused until `chaos abort --clear`\n", dir)
			return nil
		},
	}
}
