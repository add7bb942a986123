package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/engine/scheduler"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/kubeconfig"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/reports"
)

// scheduleCommand runs a schedule file until it is told to stop; with
// --next it prints the coming fires and runs nothing.
func scheduleCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "schedule",
		Usage:     "run a schedule file's experiments on cron, in windows, outside freezes (until SIGTERM)",
		ArgsUsage: "FILE",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "next", Usage: "print the next `N` fires and why any is skipped; run nothing"},
			&cli.StringFlag{Name: "from", Usage: "with --next: list the fires after `TIME` (RFC 3339) instead of now"},
			&cli.StringFlag{Name: "report-dir", Usage: "write each run's reports into `DIR`/ENTRY/TIME-EXPERIMENT"},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9464", Usage: "serve /metrics and /healthz on `ADDR` (loopback by default; empty serves nothing)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error (logs go to stderr)"},
			stateDirFlag,
			&cli.BoolFlag{Name: "leader-elect", Usage: "schedule only while holding a coordination/v1 Lease (several replicas, one schedules)"},
			kubeconfigFlag, kubeContextFlag,
			&cli.StringFlag{Name: "lease-namespace", Value: "chaos", Usage: "with --leader-elect: the Lease's `NAMESPACE`"},
			&cli.StringFlag{Name: "lease-name", Value: "chaos-scheduler", Usage: "with --leader-elect: the Lease's `NAME`"},
			&cli.DurationFlag{Name: "lease-duration", Value: 15 * time.Second, Usage: "with --leader-elect: how long a Lease lasts unrenewed; a dead leader is replaced within it"},
			&cli.DurationFlag{Name: "renew-deadline", Value: 10 * time.Second, Usage: "with --leader-elect: the leader stops scheduling if it cannot renew within this"},
			&cli.DurationFlag{Name: "retry-period", Value: 2 * time.Second, Usage: "with --leader-elect: how often replicas try to acquire or renew"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "schedule takes exactly one schedule file"}
			}
			s, err := loadSchedule(c.Args().First())
			if err != nil {
				return err
			}
			if n := c.Int("next"); c.IsSet("next") {
				if n < 1 {
					return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--next %d: give a number of fires, at least 1", n)}
				}
				from := time.Now()
				if f := c.String("from"); f != "" {
					if from, err = time.Parse(time.RFC3339, f); err != nil {
						return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--from %q: give an RFC 3339 time, e.g. 2026-03-06T09:00:00+01:00", f)}
					}
				}
				return printNext(stdout, s, from, n)
			}
			level, err := logLevel(c.String("log-level"))
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := interruptible(c.Context, stderr)
			defer stop()
			kube, err := kubeSource(c)
			if err != nil {
				return err
			}
			o := scheduleOptions{
				stateDir: c.String("state-dir"), reportDir: c.String("report-dir"),
				listen: c.String("listen"), log: log, logLevel: level, stderr: stderr, kube: kube,
			}
			if c.Bool("leader-elect") {
				return electSchedule(ctx, c, s, o)
			}
			// A single scheduler holds its schedule's lock in the state
			// directory for its whole life (a second one of the same
			// schedule is refused, naming the first) and keeps a record
			// of how far it got, so a restart catches up what fell due
			// while it was down.
			dir, err := stateDir(c)
			if err != nil {
				return err
			}
			o.stateDir = dir
			p, err := openProgress(dir, s)
			if err != nil {
				return err
			}
			defer func() { _ = p.Close() }()
			o.progress = p
			return serveSchedule(ctx, s, o)
		},
	}
}

// loadSchedule loads a schedule file, or says what is wrong with it.
func loadSchedule(path string) (*experiments.Schedule, error) {
	s, err := experiments.LoadSchedule(path)
	var fe *experiments.FileError
	switch {
	case errors.As(err, &fe):
		return nil, &exitError{code: reports.Invalid.ExitCode(), msg: "the schedule is invalid; nothing was run:\n" + fe.Error()}
	case err != nil:
		return nil, &exitError{code: reports.Invalid.ExitCode(), msg: err.Error()}
	}
	return s, nil
}

// printNext prints the next n fires, each in its entry's time zone.
func printNext(w io.Writer, s *experiments.Schedule, now time.Time, n int) error {
	plan, err := scheduler.Compile(s)
	if err != nil {
		return err
	}
	var (
		freezes []experiments.Period
		ferr    error
	)
	if path := s.FreezeFilePath(); path != "" {
		// Freeze dates are in the schedule's zone (an entry with no zone
		// of its own has it).
		freezes, ferr = scheduler.ReadFreezeFile(path, s.Location(&experiments.ScheduleEntry{}))
	}
	if ferr != nil {
		_, _ = fmt.Fprintf(w, "warning: %v; every fire is skipped until it is fixed\n", ferr)
	}
	for _, f := range plan.Upcoming(now, n, freezes) {
		what := "run"
		switch {
		case ferr != nil && f.Skip == "":
			what = "skip (" + string(scheduler.SkipFreezeUnknown) + ")"
		case f.Skip != "":
			what = fmt.Sprintf("skip (%s: %s)", f.Skip, f.Detail)
		}
		_, _ = fmt.Fprintf(w, "%s  %s  %s\n", f.At.Format("2006-01-02 15:04:05 MST"), f.Entry, what)
	}
	return nil
}

type scheduleOptions struct {
	stateDir, reportDir, listen string
	log                         *slog.Logger
	logLevel                    slog.Level
	stderr                      io.Writer
	// kube is the cluster of --kubeconfig and --context: the runs' and,
	// with --leader-elect, the Lease's.
	kube kubeconfig.Source
	// claims, with leader election, are the claims of due instants in the
	// shared state directory, so no fire runs twice across a change of
	// leader, and a new leader catches up what no replica decided.
	claims *scheduler.Claims
	// progress, without leader election, is the single scheduler's lock
	// and record in the state directory: one scheduler of the schedule on
	// it, and a restart catches up what it missed.
	progress *scheduler.Progress
}

// fireDir is schedule s's folder of the state directory dir:
// STATE/fires/SCHEDULE. Under the schedule's name, because the state
// directory is shared by whatever runs as its user (by default one per
// user): two different schedules on it, each with an entry "nightly",
// must neither skip each other's fires as claimed nor lock each other out.
func fireDir(dir string, s *experiments.Schedule) string {
	return filepath.Join(dir, "fires", s.Metadata.Name)
}

// fireClaims are schedule s's fire claims for leader election; leading is
// its fence.
func fireClaims(dir string, s *experiments.Schedule, identity string, leading scheduler.Leading) *scheduler.Claims {
	return &scheduler.Claims{Dir: fireDir(dir, s), Identity: identity, Leading: leading}
}

// openProgress takes schedule s's lock in the state directory dir and
// reads its progress record. Another scheduler of s holding it is a
// refusal (its exit code), in one line naming that scheduler's pid.
func openProgress(dir string, s *experiments.Schedule) (*scheduler.Progress, error) {
	p, err := scheduler.OpenProgress(fireDir(dir, s), scheduler.Identity())
	if errors.Is(err, scheduler.ErrScheduleHeld) {
		return nil, &exitError{code: reports.Refused.ExitCode(), msg: fmt.Sprintf("schedule %q, --state-dir %s: %v; stop it first, or give this one another --state-dir", s.Metadata.Name, dir, err)}
	}
	if err != nil {
		return nil, &exitError{code: reports.Error.ExitCode(), msg: fmt.Sprintf("schedule %q, --state-dir %s: %v", s.Metadata.Name, dir, err)}
	}
	return p, nil
}

// serveSchedule runs the scheduler and its HTTP endpoints until ctx ends;
// the scheduler cancels what is live and waits for every revert first.
func serveSchedule(ctx context.Context, s *experiments.Schedule, o scheduleOptions) error {
	reg := prometheus.NewRegistry()
	metrics, err := scheduler.NewMetrics(reg)
	if err != nil {
		return err
	}
	base := engine.Runner{
		StateDir:      o.stateDir,
		PluginCommand: pluginCommandWith(o.kube, selfPlugin),
		PluginNames:   builtin.Names(),
		NewProber:     proberWith(o.kube),
		Log:           o.stderr,
		LogLevel:      o.logLevel,
	}
	sch := &scheduler.Scheduler{
		Schedule:  s,
		ReportDir: o.reportDir,
		Metrics:   metrics,
		Log:       o.log,
		Claims:    o.claims,
		Progress:  o.progress,
		RunFile: func(ctx context.Context, path, reportDir string) *reports.Record {
			rn := base
			rn.ReportDir = reportDir
			return rn.RunFile(ctx, path)
		},
	}
	if am := s.Spec.Alertmanager; am != nil {
		sch.Alerts = &scheduler.Alertmanager{URL: am.URL, Timeout: am.Timeout}
	}
	var srv *http.Server
	serveDone := make(chan struct{})
	if o.listen != "" {
		l, err := net.Listen("tcp", o.listen)
		if err != nil {
			return &exitError{code: reports.Refused.ExitCode(), msg: fmt.Sprintf("--listen %s: %v", o.listen, err)}
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = fmt.Fprintf(w, "ok: %d runs live\n", sch.Live())
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		o.log.Info("listening", "addr", l.Addr().String())
		go func() {
			defer close(serveDone)
			_ = srv.Serve(l)
		}()
	} else {
		close(serveDone)
	}
	if o.progress != nil {
		o.log.Info("schedule", "name", s.Metadata.Name, "entries", len(s.Spec.Entries), "stateDir", o.stateDir, "progress", o.progress.Path())
	} else {
		o.log.Info("schedule", "name", s.Metadata.Name, "entries", len(s.Spec.Entries), "stateDir", o.stateDir, "claimsAs", o.claims.Identity)
	}
	err = sch.Run(ctx)
	if srv != nil {
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = srv.Shutdown(shut)
		cancel()
	}
	<-serveDone
	o.log.Info("stopped", "cause", err)
	if errors.Is(err, engine.ErrInterrupted) || errors.Is(err, context.Canceled) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	return nil
}
