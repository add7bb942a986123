package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/engine/scheduler"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// gamedayCommand runs a game day, and confirms or aborts a running one.
func gamedayCommand(stdin io.Reader, stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "gameday",
		Usage: "run a game day file: experiments in order, with checkpoints a person confirms",
		Subcommands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the game day; at a checkpoint, wait for `chaos gameday continue NAME` (or Enter at a terminal)",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "note", Usage: "a `NOTE` for the combined report (repeatable)"},
					&cli.StringFlag{Name: "report-dir", Usage: "write every experiment's reports and the combined gameday.md into `DIR`"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
					stateDirFlag,
					kubeconfigFlag, kubeContextFlag,
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return &exitError{code: reports.Invalid.ExitCode(), msg: "gameday run takes exactly one game day file"}
					}
					kube, err := kubeSource(c)
					if err != nil {
						return err
					}
					day, err := experiments.LoadGameDay(c.Args().First())
					if fe := (*experiments.FileError)(nil); errors.As(err, &fe) {
						return &exitError{code: reports.Invalid.ExitCode(), msg: "the game day is invalid; nothing was run:\n" + fe.Error()}
					} else if err != nil {
						return &exitError{code: reports.Invalid.ExitCode(), msg: err.Error()}
					}
					level, err := logLevel(c.String("log-level"))
					if err != nil {
						return err
					}
					base := engine.Runner{StateDir: c.String("state-dir"), PluginCommand: pluginCommandWith(kube, selfPlugin), PluginNames: builtin.Names(),
						NewProber: proberWith(kube), Log: stderr, LogLevel: level}
					g := &scheduler.GameDay{
						Day: day, Dir: gamedayDir(c.String("state-dir"), day.Metadata.Name),
						ReportDir: c.String("report-dir"), Notes: c.StringSlice("note"),
						Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
						RunFile: func(ctx context.Context, path, reportDir string) *reports.Record {
							rn := base
							rn.ReportDir = reportDir
							return rn.RunFile(ctx, path)
						},
					}
					if fileIsTerminal(stdin) {
						g.Confirm = terminalConfirm(stdin, stderr)
					}
					ctx, stop := interruptible(c.Context, stderr)
					defer stop()
					results, err := g.Run(ctx)
					worst := 0
					for _, r := range results {
						if r.Record != nil {
							_, _ = fmt.Fprintf(stdout, "%s: %s — %s\n", r.Record.Experiment.Name, r.Record.Verdict, r.Record.Reason)
							worst = max(worst, r.Record.Verdict.ExitCode())
						}
					}
					if g.ReportDir != "" {
						_, _ = fmt.Fprintf(stdout, "report: %s\n", filepath.Join(g.ReportDir, scheduler.GameDayReportFile))
					}
					if err != nil {
						return &exitError{code: max(worst, reports.Aborted.ExitCode()), msg: "game day stopped: " + err.Error()}
					}
					if worst != 0 {
						return &exitError{code: worst}
					}
					return nil
				},
			},
			{
				Name:      "continue",
				Usage:     "confirm the checkpoint the running game day NAME waits at",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{stateDirFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return &exitError{code: reports.Invalid.ExitCode(), msg: "gameday continue takes the game day's name"}
					}
					step, msg, err := scheduler.Continue(gamedayDir(c.String("state-dir"), c.Args().First()))
					if errors.Is(err, scheduler.ErrNotWaiting) {
						return &exitError{code: reports.Refused.ExitCode(), msg: fmt.Sprintf("game day %q: %v", c.Args().First(), err)}
					}
					if err != nil {
						return err
					}
					_, _ = fmt.Fprintf(stdout, "confirmed step %d: %s\n", step+1, msg)
					return nil
				},
			},
			{
				Name:      "abort",
				Usage:     "stop the running game day NAME: what is live is reverted, the rest does not run",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{stateDirFlag, &cli.StringFlag{Name: "reason", Value: "aborted by hand", Usage: "why, for the report"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return &exitError{code: reports.Invalid.ExitCode(), msg: "gameday abort takes the game day's name"}
					}
					if err := scheduler.Abort(gamedayDir(c.String("state-dir"), c.Args().First()), c.String("reason")); err != nil {
						return &exitError{code: reports.Refused.ExitCode(), msg: fmt.Sprintf("game day %q: %v", c.Args().First(), err)}
					}
					return nil
				},
			},
		},
	}
}

// gamedayDir is where a game day's control files live.
func gamedayDir(stateDir, name string) string {
	if stateDir == "" {
		stateDir = safety.DefaultStateDir()
	}
	return filepath.Join(stateDir, "gamedays", filepath.Base(name))
}

// terminalConfirm asks at the terminal. The read cannot be interrupted,
// so one goroutine reads lines for the whole game day.
func terminalConfirm(stdin io.Reader, stderr io.Writer) func(ctx context.Context, message string) error {
	lines := make(chan error)
	go func() {
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- nil
		}
		close(lines)
	}()
	return func(ctx context.Context, message string) error {
		_, _ = fmt.Fprintf(stderr, "checkpoint: %s\npress Enter to go on (or run chaos gameday continue / abort elsewhere)\n", message)
		select {
		case _, ok := <-lines:
			if !ok {
				return errors.New("the terminal closed")
			}
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
