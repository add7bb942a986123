package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
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
			pluginsCommand(stdout),
			pluginServeCommand(),
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return &exitError{code: reports.Invalid.ExitCode(), msg: err.Error()}
		},
	}
	err := app.RunContext(ctx, args)
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
	if strings.Contains(err.Error(), "flag provided but not defined") || strings.Contains(err.Error(), "Required flag") {
		return reports.Invalid.ExitCode()
	}
	return reports.Error.ExitCode()
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--log-level %q: use debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run one experiment: steady state, faults, verdict, report",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "report-dir", Usage: "write report.json and report.md into `DIR`"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "run takes exactly one experiment file"}
			}
			log, err := newLogger(stderr, c.String("log-level"))
			if err != nil {
				return err
			}
			exp, err := experiments.Load(c.Args().First(), experiments.Options{Plugins: builtin.Names()})
			if err != nil {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "invalid experiment; nothing was injected\n" + err.Error()}
			}
			ctx, stop := interruptible(c.Context, stderr)
			defer stop()
			rec := engine.Run(ctx, exp, engine.Options{
				Plugins: engine.ExecPlugins{Command: selfPlugin, Log: stderr},
				Log:     log,
			})
			_, _ = fmt.Fprintf(stdout, "%s: %s — %s\n", rec.Experiment.Name, rec.Verdict, rec.Reason)
			for _, l := range rec.Leftovers {
				_, _ = fmt.Fprintf(stdout, "LEFT BEHIND: %s\n", l)
			}
			if dir := c.String("report-dir"); dir != "" {
				paths, err := reports.WriteFiles(dir, rec)
				if err != nil {
					_, _ = fmt.Fprintf(stderr, "chaos: write report: %v\n", err)
					return &exitError{code: reports.Error.ExitCode()}
				}
				for _, p := range paths {
					_, _ = fmt.Fprintf(stdout, "report: %s\n", p)
				}
			}
			if code := rec.Verdict.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// interruptible returns a context that the first SIGINT or SIGTERM cancels
// with engine.ErrInterrupted as its cause. A second signal is refused with a
// warning: exiting in the middle of a revert is how faults get left behind.
func interruptible(parent context.Context, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case s := <-sigs:
				n++
				if n == 1 {
					_, _ = fmt.Fprintf(stderr, "chaos: %s: stopping, reverting every fault (a second signal will not interrupt the revert)\n", s)
					cancel(fmt.Errorf("%w by %s", engine.ErrInterrupted, s))
					continue
				}
				_, _ = fmt.Fprintf(stderr, "chaos: %s: refused — faults are being reverted; exiting now would leave them behind\n", s)
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

// selfPlugin runs a built-in plugin in a new process of this same binary.
func selfPlugin(name string) (*exec.Cmd, error) {
	if _, ok := builtin.Faults()[name]; !ok {
		return nil, fmt.Errorf("no plugin named %q (built-in: %s)", name, strings.Join(builtin.Names(), ", "))
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return exec.Command(self, "plugin", "serve", name), nil
}

func validateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check experiment files without running anything",
		ArgsUsage: "FILE...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "validate takes one or more experiment files"}
			}
			bad := 0
			for _, path := range c.Args().Slice() {
				if _, err := experiments.Load(path, experiments.Options{Plugins: builtin.Names()}); err != nil {
					bad++
					_, _ = fmt.Fprintln(stdout, err)
					continue
				}
				_, _ = fmt.Fprintf(stdout, "%s: ok\n", path)
			}
			if bad > 0 {
				return &exitError{code: reports.Invalid.ExitCode()}
			}
			return nil
		},
	}
}

func pluginsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "plugins",
		Usage: "inspect fault plugins",
		Subcommands: []*cli.Command{{
			Name:  "list",
			Usage: "list the available fault plugins with their versions",
			Action: func(*cli.Context) error {
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				_, _ = fmt.Fprintln(tw, "NAME\tVERSION\tTARGETS\tSOURCE\tSUMMARY")
				faults := builtin.Faults()
				for _, name := range builtin.Names() {
					d := faults[name]().Describe()
					_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\tbuilt-in\t%s\n", d.Name, d.Version, strings.Join(d.TargetKinds, ","), d.Summary)
				}
				return tw.Flush()
			},
		}},
	}
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
