package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// Runner runs experiment files: it is what `chaos run` (and next `chaos
// schedule`) calls. It loads the file, asks safety whether the state
// directory, the kill switch, the ledger and the target locks allow the run,
// runs it, and writes its reports. Every way a file's run ends is a record,
// made here or by Run; the runner prints nothing, the caller does.
//
// Only PluginCommand (or Plugins) is required; every other zero value has the default its
// comment gives.
type Runner struct {
	// StateDir holds the ledger, the target locks and the kill switch; it
	// defaults to safety.DefaultStateDir().
	StateDir string
	// PluginCommand is the command that serves a named plugin; each plugin
	// runs as its own process, its output going to Log.
	PluginCommand func(name string) (*exec.Cmd, error)
	// Plugins, when set, opens plugins instead of PluginCommand (tests).
	Plugins Plugins
	// PluginNames are the plugins a file may name (validation); nil skips
	// that check.
	PluginNames []string
	// NewProber builds probers; nil is the built-in probe kinds.
	NewProber func(name string, p *experiments.Probe) (Prober, error)
	// Clock defaults to the real clock.
	Clock Clock
	// Log receives the run's log lines and warnings, with the file's
	// secrets redacted; nil discards them.
	Log io.Writer
	// LogLevel is the level of the run's log lines.
	LogLevel slog.Level
	// ReportDir, when set, receives report.json and report.md of every
	// record and the formats the file's report.formats and ReportFormats
	// add, as does the file's own report.delivery.dir.
	ReportDir string
	// Reported, when set, is told the report files written for a record,
	// and the error that stopped writing them.
	Reported func(paths []string, err error)
	// Deliverer, when set, sends every record whose file loaded to its
	// owners once the report files are written; what it returns is the
	// record's Deliveries, and the files are written again with them.
	Deliverer Deliverer
	// Progress, when set, is told how the run goes while it goes, with the
	// file's secrets redacted.
	Progress Progress
	// LogFormat is "text" (the default) or "json": the slog handler of the
	// run's log lines.
	LogFormat string
	// ReportFormats are written besides report.json, report.md and the
	// file's report.formats (`chaos run --gate` adds junit), also for
	// records of files that never loaded.
	ReportFormats []reports.Format
	// HistoryDir, when set, receives a copy of every record as
	// HistoryDir/<run>/report.json, one directory per run, for `chaos
	// gate --history`.
	HistoryDir string
}

// Causes of records the runner makes itself, before the engine runs.
const (
	// CauseInvalidFile: the file did not load or validate.
	CauseInvalidFile reports.Cause = "invalid-file"
	// CauseUnsafeStateDir: the state directory could be planted with files
	// by another user; refused.
	CauseUnsafeStateDir reports.Cause = "unsafe-state-dir"
	// CauseStateDir: the state directory could not be made or opened.
	CauseStateDir reports.Cause = "state-dir"
	// causeKillSwitchUnknown: whether the kill switch is engaged could not
	// be read.
	causeKillSwitchUnknown reports.Cause = "kill-switch-unknown"
)

// prepared is a file loaded and admitted by safety, ready to run or plan.
type prepared struct {
	exp    *experiments.Experiment
	dir    string
	ledger *safety.Ledger
	log    io.Writer
}

// admit loads path and asks safety whether it may run. A nil record means
// it may; otherwise the record is why not, and p, when the file loaded,
// holds it (its owners are told of the refusal too).
func (rn *Runner) admit(path string) (*prepared, *reports.Record) {
	now := clock.Or(rn.Clock).Now()
	exp, err := experiments.Load(path, experiments.Options{Plugins: rn.PluginNames})
	if err != nil {
		return nil, stillborn(path, nil, now, reports.Invalid, CauseInvalidFile,
			"the experiment file is invalid; nothing was injected:\n"+err.Error())
	}
	p := &prepared{exp: exp, dir: rn.StateDir, log: RedactingWriter(rn.Log, exp.Secrets())}
	if p.dir == "" {
		p.dir = safety.DefaultStateDir()
	}
	if err := safety.EnsureStateDir(p.dir); err != nil {
		v, cause := reports.Invalid, CauseStateDir
		if errors.Is(err, safety.ErrUnsafeStateDir) {
			v, cause = reports.Refused, CauseUnsafeStateDir
		}
		return p, stillborn(path, exp, now, v, cause, fmt.Sprintf("--state-dir %s: %v", p.dir, err))
	}
	switch err := safety.CheckKillSwitch(p.dir); {
	case errors.Is(err, safety.ErrKillSwitch):
		// Refused, not aborted: nothing was started, and a pipeline must
		// be able to tell "try later" from "fix your file".
		reason := err.Error()
		if ke := (*safety.KillSwitchError)(nil); errors.As(err, &ke) {
			reason = ke.Reason
		}
		return p, stillborn(path, exp, now, reports.Refused, causeKillSwitch,
			fmt.Sprintf("refusing to start: the kill switch is engaged (%s); nothing was touched; `chaos abort --clear` releases it", reason))
	case err != nil:
		return p, stillborn(path, exp, now, reports.Error, causeKillSwitchUnknown, "refusing to start: "+err.Error())
	}
	ledger, err := safety.OpenLedger(p.dir, safety.WithRedact(func(s string) string { return experiments.Redact(s, exp.Secrets()) }))
	if err != nil {
		return p, stillborn(path, exp, now, reports.Error, CauseStateDir, "open ledger: "+err.Error())
	}
	p.ledger = ledger
	return p, nil
}

// RunFile runs the experiment in path and returns its record, whatever
// happened: an invalid file, a refusal and a run all end in one. The
// reports are written (ReportDir, the file's report.delivery.dir) before it
// returns. Cancelling ctx aborts the run with context.Cause(ctx); the kill
// switch of the state directory aborts it the moment it is engaged.
func (rn *Runner) RunFile(ctx context.Context, path string) *reports.Record {
	p, rec := rn.admit(path)
	if rec != nil {
		var exp *experiments.Experiment
		if p != nil {
			exp = p.exp
		}
		rn.report(ctx, rec, exp, "", nil)
		return rec
	}
	runCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watch sync.WaitGroup
	watch.Go(func() { _ = safety.Watch(watchCtx, p.dir, abort) })
	opts := rn.options(p)
	if opts.Progress = withProgress(rn.Progress, p.exp); opts.Progress != nil {
		opts.Progress.Started(startOf(p.exp))
	}
	rec = Run(runCtx, p.exp, opts)
	stopWatch()
	watch.Wait()
	rn.report(ctx, rec, p.exp, p.exp.Spec.Report.Delivery.Dir, p.exp.Spec.Report.Formats)
	warnUnsupported(p.log, p.exp, rn.Deliverer != nil)
	return rec
}

// DryRun checks everything RunFile would before injecting and writes the
// plan to w. It returns a *PlanError saying the verdict the run would get
// when it could not go ahead.
func (rn *Runner) DryRun(ctx context.Context, path string, w io.Writer) error {
	p, rec := rn.admit(path)
	if rec != nil {
		return &PlanError{Verdict: rec.Verdict, Cause: rec.Cause, Reason: rec.Reason}
	}
	return DryRun(ctx, p.exp, rn.options(p), RedactingWriter(w, p.exp.Secrets()))
}

// Plan is DryRun's plan as a string.
func (rn *Runner) Plan(ctx context.Context, path string) (string, error) {
	var b strings.Builder
	err := rn.DryRun(ctx, path, &b)
	return b.String(), err
}

func (rn *Runner) options(p *prepared) Options {
	return Options{
		Plugins:     rn.plugins(p.log),
		Clock:       rn.Clock,
		NewProber:   rn.NewProber,
		Log:         slog.New(rn.logHandler(p.log)),
		Ledger:      p.ledger,
		LockTargets: safety.TargetLocker(p.dir),
	}
}

// logHandler is the slog handler of LogFormat writing to w.
func (rn *Runner) logHandler(w io.Writer) slog.Handler {
	o := &slog.HandlerOptions{Level: rn.LogLevel}
	if rn.LogFormat == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

func (rn *Runner) plugins(log io.Writer) Plugins {
	if rn.Plugins != nil {
		return rn.Plugins
	}
	return ExecPlugins{Command: rn.PluginCommand, Log: log}
}

// report writes the record's reports once, into every directory it goes
// to, in the formats the file asks for and those the runner adds, then
// delivers them to the owners exp names and writes them again with the
// deliveries recorded. Delivery runs under a context the run's stop does
// not cancel: the owners most want to hear of interrupted runs, and the
// Deliverer bounds its own time.
func (rn *Runner) report(ctx context.Context, rec *reports.Record, exp *experiments.Experiment, deliveryDir string, fileFormats []string) {
	formats := slices.Clone(rn.ReportFormats)
	for _, f := range fileFormats {
		formats = append(formats, reports.Format(f))
	}
	write := func() ([]string, error) { return reports.WriteAllFormats(rec, formats, rn.ReportDir, deliveryDir) }
	paths, err := write()
	if rn.Deliverer != nil && exp != nil && err == nil {
		rec.Deliveries = rn.Deliverer.Deliver(context.WithoutCancel(ctx), exp, rec, paths)
		if len(rec.Deliveries) > 0 {
			paths, err = write()
		}
	}
	if err == nil && rn.HistoryDir != "" {
		var p []string
		p, err = reports.WriteFormats(filepath.Join(rn.HistoryDir, reports.HistoryName(rec)), rec, []reports.Format{reports.FormatJSON})
		paths = append(paths, p...)
	}
	if rn.Reported != nil && (len(paths) > 0 || err != nil) {
		rn.Reported(paths, err)
	}
}

// stillborn is the record of a run that ended before the engine started
// it: the one place such records are made. With the experiment, the
// planned faults are listed without their parameters: what the run would
// have done, which the owners read to judge when to try again.
func stillborn(path string, exp *experiments.Experiment, now time.Time, v reports.Verdict, cause reports.Cause, reason string) *reports.Record {
	rec := &reports.Record{
		Experiment: reports.Experiment{Name: filepath.Base(path), File: path},
		StartedAt:  now, EndedAt: now, Verdict: v, Cause: cause, Reason: reason,
	}
	if exp != nil {
		rec.Experiment = experimentOf(exp)
		for i, f := range exp.Spec.Faults {
			rec.Faults = append(rec.Faults, reports.Fault{Index: i, Plugin: f.Plugin, Target: f.Target, After: f.After, For: f.For, State: "planned"})
		}
		if secrets := exp.Secrets(); len(secrets) > 0 {
			rec.Redact(experiments.NewRedactor(secrets).Redact)
		}
	}
	return rec
}

// experimentOf is the record's header for exp.
func experimentOf(exp *experiments.Experiment) reports.Experiment {
	return reports.Experiment{
		Name:       exp.Metadata.Name,
		File:       exp.File,
		Hypothesis: strings.TrimSpace(exp.Spec.Hypothesis),
		Owner: reports.Owner{
			Team:    exp.Metadata.Owner.Team,
			Email:   exp.Metadata.Owner.Email,
			Webhook: exp.Metadata.Owner.Webhook.String(),
		},
	}
}

// warnUnsupported says which report settings of the file this version does
// not act on yet, rather than let a user wait for a report that never comes.
func warnUnsupported(w io.Writer, exp *experiments.Experiment, delivering bool) {
	r := exp.Spec.Report
	var not []string
	if !r.Delivery.Webhook.IsZero() && !delivering {
		not = append(not, "webhook delivery")
	}
	if r.Delivery.Email != nil && !delivering {
		not = append(not, "e-mail delivery")
	}
	if len(not) > 0 {
		_, _ = fmt.Fprintf(w, "chaos: warning: this version does not produce %s yet; only report.json and report.md are written\n", strings.Join(not, ", "))
	}
}

// RedactingWriter replaces the experiment's secrets, in every form
// experiments.Redact knows (escaped, quoted, cut short), in everything
// written through it: what chaos writes never holds a secret (values print
// as ***), but a plugin's log line or error may echo a parameter. Loggers,
// and go-plugin relaying a plugin's stderr, write whole lines, so a secret
// is never split. A nil w discards.
func RedactingWriter(w io.Writer, secrets []string) io.Writer {
	if w == nil {
		return io.Discard
	}
	if len(secrets) == 0 {
		return w
	}
	return redactingWriter{w: w, r: experiments.NewRedactor(secrets)}
}

type redactingWriter struct {
	w io.Writer
	r *experiments.Redactor
}

func (r redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, r.r.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
