package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code out of an action, so that run decides the
// code after every cleanup has happened.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// run is the whole program; main only exits with its result.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "chaos",
		Usage:     "run chaos-engineering experiments safely",
		Version:   version,
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, below, with the exit code we choose.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			runCommand(stdout, stderr),
			validateCommand(stdout),
			schemaCommand(stdout),
			pluginsCommand(stdout),
			recoverCommand(stdout),
			abortCommand(stdout),
			reportCommand(stdout),
			gateCommand(stdout, stderr),
			scheduleCommand(stdout, stderr),
			gamedayCommand(os.Stdin, stdout, stderr),
			pluginServeCommand(),
		},
		OnUsageError: usageError,
		// Without a command there is nothing to do but help; a word that
		// is not a command is a usage error like any other.
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("unknown command %q (see chaos --help)", c.Args().First())}
			}
			return cli.ShowAppHelp(c)
		},
	}
	setUsageError(app.Commands)
	err := app.RunContext(ctx, flagsFirst(app.Commands, args))
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			_, _ = fmt.Fprintln(stderr, "chaos:", ee.msg)
		}
		return ee.code
	}
	_, _ = fmt.Fprintln(stderr, "chaos:", err)
	return reports.Error.ExitCode()
}

// usageError makes every usage error (a bad flag, a bad flag value) exit
// with the code of bad input.
func usageError(_ *cli.Context, err error, _ bool) error {
	return &exitError{code: reports.Invalid.ExitCode(), msg: err.Error()}
}

func setUsageError(cmds []*cli.Command) {
	for _, c := range cmds {
		c.OnUsageError = usageError
		setUsageError(c.Subcommands)
	}
}

func runCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run one experiment: steady state, faults, verdict, report",
		ArgsUsage: "FILE",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "report-dir", Usage: "write report.json and report.md (and the file's report.formats) into `DIR`"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "check everything and print the plan; inject nothing"},
			stateDirFlag,
			pluginDirFlag, pluginLockFlag, allowUnpinnedFlag,
			kubeconfigFlag, kubeContextFlag,
		}, append(outputFlags(), gateFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "run takes exactly one experiment file"}
			}
			level, err := logLevel(c.String("log-level"))
			if err != nil {
				return err
			}
			kube, err := kubeSource(c)
			if err != nil {
				return err
			}
			deliverer, err := newDeliverer(c)
			if err != nil {
				return err
			}
			progress, logs, closeView, err := progressFor(stdout, stderr, c.String("log-format"), level)
			if err != nil {
				return err
			}
			path := c.Args().First()
			var (
				reportPaths []string
				reportErr   error
			)
			runner := &engine.Runner{
				StateDir:      c.String("state-dir"),
				PluginCommand: pluginCommandWith(kube, pluginSource(c, path).Command),
				PluginNames:   pluginSource(c, path).Names(),
				NewProber:     proberWith(kube),
				Log:           logs,
				LogLevel:      level,
				LogFormat:     c.String("log-format"),
				Deliverer:     deliverer,
				ReportDir:     c.String("report-dir"),
				Reported:      func(paths []string, err error) { reportPaths, reportErr = paths, err },
				HistoryDir:    c.String("history"),
			}
			if c.Bool("gate") {
				// A pipeline: no terminal view, one summary line.
				closeView()
				runner.Log = stderr
				return gateRun(c, runner, path, stdout, stderr)
			}
			if c.Bool("dry-run") {
				closeView()
				runner.Log = stderr
				return dryRun(c.Context, runner, path, stdout)
			}
			runner.Progress = progress
			ctx, stop := interruptible(c.Context, logs)
			defer stop()
			rec := runner.RunFile(ctx, path)
			closeView()
			printRecord(stdout, stderr, rec, reportPaths)
			printDeliveries(stdout, stderr, rec.Deliveries)
			if reportErr != nil {
				_, _ = fmt.Fprintf(stderr, "chaos: write report: %v\n", reportErr)
				return &exitError{code: reports.Error.ExitCode()}
			}
			if code := rec.Verdict.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// logLevel reads the --log-level flag.
func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--log-level %q: use debug, info, warn or error", s)}
	}
	return l, nil
}

// printRecord says how a run ended. A run that never started for want of a
// valid file or a usable state directory is said on stderr, as every bad
// input is; a run that started gets its verdict line and its leftovers.
func printRecord(stdout, stderr io.Writer, rec *reports.Record, reportPaths []string) {
	switch rec.Cause {
	case engine.CauseInvalidFile, engine.CauseUnsafeStateDir, engine.CauseStateDir:
		_, _ = fmt.Fprintln(stderr, "chaos:", rec.Reason)
		return
	}
	_, _ = fmt.Fprintf(stdout, "%s: %s — %s\n", rec.Experiment.Name, rec.Verdict, rec.Reason)
	for _, l := range rec.Leftovers {
		_, _ = fmt.Fprintf(stdout, "LEFT BEHIND: %s\n", l)
	}
	for _, p := range reportPaths {
		_, _ = fmt.Fprintf(stdout, "report: %s\n", p)
	}
}

// interruptible returns a context that the first SIGINT, SIGTERM, SIGHUP
// or SIGQUIT cancels with engine.ErrInterrupted as its cause: each ends the
// run the same way (revert, report, exit with the verdict), since a dropped
// SSH session or a CI hang-up must not leave a fault behind either. A second
// signal is refused with a warning: exiting in the middle of a revert is how
// faults get left behind.
func interruptible(parent context.Context, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-sigs:
				n++
				if n == 1 {
					_, _ = fmt.Fprintf(stderr, "chaos: %s: stopping, reverting every fault (a second signal will not interrupt the revert)\n", signalName(s))
					cancel(fmt.Errorf("%w by %s", engine.ErrInterrupted, signalName(s)))
					continue
				}
				_, _ = fmt.Fprintf(stderr, "chaos: %s: refused — faults are being reverted; exiting now would leave them behind\n", signalName(s))
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// signalName says a signal as people know it, not as Go prints it
// ("interrupt", "terminated").
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "Ctrl-C (SIGINT)"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP (the terminal or session went away)"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return s.String()
}

// pluginServeCommand is how the binary serves a built-in plugin to itself.
// It is hidden: people never run it by hand.
func pluginServeCommand() *cli.Command {
	return &cli.Command{
		Name:   "plugin",
		Hidden: true,
		Subcommands: []*cli.Command{{
			Name:      "serve",
			ArgsUsage: "NAME",
			Action: func(c *cli.Context) error {
				mk, ok := builtin.Faults()[c.Args().First()]
				if !ok {
					return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("no built-in plugin %q", c.Args().First())}
				}
				if os.Getenv(sdk.Handshake().MagicCookieKey) == "" {
					return &exitError{code: reports.Invalid.ExitCode(), msg: "this command is run by chaos itself to serve a plugin, not by hand"}
				}
				return sdk.Serve(c.Context, mk())
			},
		}},
	}
}
