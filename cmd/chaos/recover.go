package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
// creating it. A directory another user could plant files in is refused
// (exit code of a refusal): nothing has been touched.
func stateDir(c *cli.Context) (string, error) {
	dir := c.String("state-dir")
	if dir == "" {
		dir = safety.DefaultStateDir()
	}
	if err := safety.EnsureStateDir(dir); err != nil {
		code := reports.Invalid.ExitCode()
		if errors.Is(err, safety.ErrUnsafeStateDir) {
			code = reports.Refused.ExitCode()
		}
		return "", &exitError{code: code, msg: fmt.Sprintf("--state-dir %s: %v", dir, err)}
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
			&cli.StringSliceFlag{Name: "discard", Usage: "set aside an unreadable ledger `FILE` (after checking it by hand) instead of recovering"},
			&cli.DurationFlag{Name: "call-timeout", Value: engine.DefaultRecoverCallTimeout, Usage: "deadline of each call to a plugin"},
			&cli.DurationFlag{Name: "grace", Value: engine.DefaultRecoverGrace, Usage: "how long an orphaned plugin gets after SIGTERM before SIGKILL"},
			pluginDirFlag, pluginLockFlag, allowUnpinnedFlag,
			kubeconfigFlag, kubeContextFlag,
		},
		Action: func(c *cli.Context) error {
			kube, err := kubeSource(c)
			if err != nil {
				return err
			}
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			ledger, err := safety.OpenLedger(dir)
			if err != nil {
				code := reports.Error.ExitCode()
				if errors.Is(err, safety.ErrUnsafeStateDir) {
					code = reports.Refused.ExitCode()
				}
				return &exitError{code: code, msg: "open ledger: " + err.Error()}
			}
			if files := c.StringSlice("discard"); len(files) > 0 {
				return discardAll(ledger, files, stdout)
			}
			// Installed plugins are found as a run finds them; the lock file is
			// --plugin-lock's or the plugin directory's (recover has no
			// experiment file to look beside).
			runner := &engine.Runner{StateDir: dir, PluginCommand: pluginCommandWith(kube, pluginSource(c, "").Command), Log: os.Stderr}
			res, err := runner.Recover(c.Context, engine.RecoverOptions{
				Ledger: ledger, Force: c.Bool("force"), CallTimeout: c.Duration("call-timeout"), Grace: c.Duration("grace"), Out: stdout,
			})
			if errors.Is(err, safety.ErrUnsafeStateDir) {
				return &exitError{code: reports.Refused.ExitCode(), msg: err.Error()}
			}
			if err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
			}
			var msgs []string
			if res.Failed > 0 {
				msgs = append(msgs, fmt.Sprintf("%d fault(s) could not be reverted; see above", res.Failed))
			}
			if res.Unreadable > 0 {
				msgs = append(msgs, fmt.Sprintf("%d ledger file(s) could not be read; check each by hand, then `chaos recover --discard FILE`", res.Unreadable))
			}
			if len(msgs) > 0 {
				return &exitError{code: reports.Error.ExitCode(), msg: strings.Join(msgs, "; ")}
			}
			return nil
		},
	}
}

// discardAll sets aside each file; any refusal makes the command fail, and
// what was set aside before it stays set aside.
func discardAll(ledger *safety.Ledger, files []string, out io.Writer) error {
	for _, f := range files {
		dest, err := ledger.Discard(f)
		if err != nil {
			code := reports.Error.ExitCode()
			if errors.Is(err, safety.ErrNotInLedger) || errors.Is(err, safety.ErrEntryReadable) {
				code = reports.Invalid.ExitCode()
			}
			return &exitError{code: code, msg: err.Error()}
		}
		_, _ = fmt.Fprintf(out, "discarded %s: moved to %s (a note beside it says why); runs and recover no longer count it\n", f, dest)
	}
	return nil
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
