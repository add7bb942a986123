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
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
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
			&cli.BoolFlag{Name: "dry-run", Usage: "check everything and print the plan; inject nothing"},
			stateDirFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "run takes exactly one experiment file"}
			}
			if _, err := newLogger(stderr, c.String("log-level")); err != nil {
				return err
			}
			exp, err := experiments.Load(c.Args().First(), experiments.Options{Plugins: builtin.Names()})
			if err != nil {
				// A pipeline gate reads the report: an invalid file gets one
				// too, so the gate never finds nothing.
				if dir := c.String("report-dir"); dir != "" {
					now := time.Now()
					_, _ = reports.WriteFiles(dir, &reports.Record{
						Experiment: reports.Experiment{Name: filepath.Base(c.Args().First()), File: c.Args().First()},
						StartedAt:  now, EndedAt: now, Verdict: reports.Invalid,
						Reason: "the experiment file is invalid; nothing was injected:\n" + err.Error(),
					})
				}
				return &exitError{code: reports.Invalid.ExitCode(), msg: "invalid experiment; nothing was injected\n" + err.Error()}
			}
			// Everything the run and its plugins log passes the secrets
			// filter: a plugin error may quote a parameter.
			stderr := newRedactingWriter(stderr, exp.Secrets())
			log, _ := newLogger(stderr, c.String("log-level"))
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			reason, engaged, err := safety.Engaged(dir)
			switch {
			case err != nil:
				return &exitError{code: reports.Error.ExitCode(), msg: fmt.Sprintf("refusing to start: cannot tell whether the kill switch is engaged: %v", err)}
			case engaged:
				// Refused, not aborted: nothing was started, and a pipeline
				// must be able to tell "try later" from "fix your file".
				why := fmt.Sprintf("refusing to start: the kill switch is engaged (%s); nothing was touched; `chaos abort --clear` releases it", reason)
				rec := refusedRecord(exp, causeKillSwitch, why)
				_, _ = fmt.Fprintf(stdout, "%s: %s — %s\n", rec.Experiment.Name, rec.Verdict, rec.Reason)
				if err := writeReports(stdout, stderr, rec, c.String("report-dir"), exp.Spec.Report.Delivery.Dir); err != nil {
					return err
				}
				return &exitError{code: reports.Refused.ExitCode()}
			}
			ledger, err := safety.OpenLedger(dir, safety.WithRedact(func(s string) string { return experiments.Redact(s, exp.Secrets()) }))
			if err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: "open ledger: " + err.Error()}
			}
			if c.Bool("dry-run") {
				return dryRun(c.Context, exp, ledger, newRedactingWriter(stdout, exp.Secrets()), stderr)
			}
			ctx, stop := interruptible(c.Context, stderr)
			defer stop()
			// The kill switch aborts this run the moment it is engaged.
			killCtx, stopKill := context.WithCancel(ctx)
			runCtx, abort := context.WithCancelCause(ctx)
			var watch sync.WaitGroup
			watch.Go(func() { _ = safety.Watch(killCtx, dir, abort) })
			rec := engine.Run(runCtx, exp, engine.Options{
				Plugins: engine.ExecPlugins{Command: selfPlugin, Log: stderr},
				Log:     log,
				Ledger:  ledger,
				LockTargets: func(keys []string, runID string) (func() error, error) {
					l, err := safety.LockTargets(dir, keys, runID)
					if err != nil {
						return nil, err
					}
					return l.Release, nil
				},
				NewProber: newProber,
			})
			stopKill()
			watch.Wait()
			abort(nil)
			_, _ = fmt.Fprintf(stdout, "%s: %s — %s\n", rec.Experiment.Name, rec.Verdict, rec.Reason)
			for _, l := range rec.Leftovers {
				_, _ = fmt.Fprintf(stdout, "LEFT BEHIND: %s\n", l)
			}
			if err := writeReports(stdout, stderr, rec, c.String("report-dir"), exp.Spec.Report.Delivery.Dir); err != nil {
				return err
			}
			warnUnsupported(stderr, exp)
			if code := rec.Verdict.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// causeKillSwitch is the cause of a run refused because `chaos abort`
// engaged the kill switch before it started.
const causeKillSwitch reports.Cause = "kill-switch"

// refusedRecord is the record of a run the environment refused before the
// engine was asked to start it.
func refusedRecord(exp *experiments.Experiment, cause reports.Cause, reason string) *reports.Record {
	now := time.Now()
	// The planned faults, without their parameters: what the run would
	// have done, which the owners read to judge when to try again.
	var faults []reports.Fault
	for i, f := range exp.Spec.Faults {
		faults = append(faults, reports.Fault{Index: i, Plugin: f.Plugin, Target: f.Target, After: f.After, For: f.For, State: "planned"})
	}
	return &reports.Record{
		Faults: faults,
		Experiment: reports.Experiment{
			Name: exp.Metadata.Name, File: exp.File, Hypothesis: strings.TrimSpace(exp.Spec.Hypothesis),
			Owner: reports.Owner{Team: exp.Metadata.Owner.Team, Email: exp.Metadata.Owner.Email, Webhook: exp.Metadata.Owner.Webhook.String()},
		},
		StartedAt: now, EndedAt: now, Verdict: reports.Refused, Cause: cause, Reason: reason,
	}
}

// writeReports writes the record's reports into each directory given (the
// --report-dir flag, the file's report.delivery.dir) and says where.
func writeReports(stdout, stderr io.Writer, rec *reports.Record, dirs ...string) error {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		paths, err := reports.WriteFiles(dir, rec)
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "chaos: write report: %v\n", err)
			return &exitError{code: reports.Error.ExitCode()}
		}
		for _, p := range paths {
			_, _ = fmt.Fprintf(stdout, "report: %s\n", p)
		}
	}
	return nil
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

// redactingWriter replaces the experiment's secrets, in every form
// experiments.Redact knows (escaped, quoted, cut short), in everything
// written through it: what chaos writes never holds a secret (values print
// as ***), but a plugin's log line or error may echo a parameter. Loggers,
// and go-plugin relaying a plugin's stderr, write whole lines, so a secret
// is never split.
type redactingWriter struct {
	w io.Writer
	r *experiments.Redactor
}

func newRedactingWriter(w io.Writer, secrets []string) redactingWriter {
	if len(secrets) == 0 {
		return redactingWriter{w: w}
	}
	return redactingWriter{w: w, r: experiments.NewRedactor(secrets)}
}

func (r redactingWriter) Write(p []byte) (int, error) {
	if r.r == nil {
		return r.w.Write(p)
	}
	if _, err := io.WriteString(r.w, r.r.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// warnUnsupported says which report settings of the file this version does
// not act on yet, rather than let a user wait for a report that never comes.
func warnUnsupported(w io.Writer, exp *experiments.Experiment) {
	r := exp.Spec.Report
	var not []string
	for _, f := range r.Formats {
		if f == experiments.FormatHTML || f == experiments.FormatJUnit {
			not = append(not, "report format "+f)
		}
	}
	if !r.Delivery.Webhook.IsZero() {
		not = append(not, "webhook delivery")
	}
	if r.Delivery.Email != nil {
		not = append(not, "e-mail delivery")
	}
	if len(not) > 0 {
		_, _ = fmt.Fprintf(w, "chaos: warning: this version does not produce %s yet; only report.json and report.md are written\n", strings.Join(not, ", "))
	}
}
