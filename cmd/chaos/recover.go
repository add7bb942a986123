package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
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
			&cli.DurationFlag{Name: "call-timeout", Value: defaultCallTimeout, Usage: "deadline of each call to a plugin"},
			&cli.DurationFlag{Name: "grace", Value: defaultStopGrace, Usage: "how long an orphaned plugin gets after SIGTERM before SIGKILL"},
		},
		Action: func(c *cli.Context) error {
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
			opts := recoverOptions{force: c.Bool("force"), callTimeout: c.Duration("call-timeout"), grace: c.Duration("grace")}
			res, err := recoverAll(c.Context, ledger, opts, stdout)
			if errors.Is(err, safety.ErrUnsafeStateDir) {
				return &exitError{code: reports.Refused.ExitCode(), msg: err.Error()}
			}
			if err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
			}
			var msgs []string
			if res.failed > 0 {
				msgs = append(msgs, fmt.Sprintf("%d fault(s) could not be reverted; see above", res.failed))
			}
			if res.unreadable > 0 {
				msgs = append(msgs, fmt.Sprintf("%d ledger file(s) could not be read; check each by hand, then `chaos recover --discard FILE`", res.unreadable))
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

const (
	// defaultCallTimeout bounds each call to a fresh plugin in recover.
	defaultCallTimeout = 20 * time.Second
	// defaultStopGrace is how long an orphaned plugin gets to revert and
	// exit after SIGTERM before it gets SIGKILL.
	defaultStopGrace = 5 * time.Second
)

// recoverOptions configure recoverAll; zero durations take the defaults.
type recoverOptions struct {
	force       bool
	callTimeout time.Duration
	grace       time.Duration
}

// recoverResult counts what recoverAll could not do.
type recoverResult struct {
	failed     int // entries still open for another reason than a live runner
	unreadable int // ledger files that are not readable entries
}

// recoverAll reverts every open ledger entry whose runner is gone, plugin
// by plugin, faults before the preparations they ride on, and names every
// ledger file it could not read: one bad file does not stop the rest.
func recoverAll(ctx context.Context, ledger *safety.Ledger, opts recoverOptions, out io.Writer) (recoverResult, error) {
	if opts.callTimeout <= 0 {
		opts.callTimeout = defaultCallTimeout
	}
	if opts.grace <= 0 {
		opts.grace = defaultStopGrace
	}
	var res recoverResult
	entries, bad, err := ledger.Read()
	if err != nil {
		return res, fmt.Errorf("read ledger: %w", err)
	}
	res.unreadable = len(bad)
	defer func() {
		for _, b := range bad {
			_, _ = fmt.Fprintf(out, "UNREADABLE %s: %v\n", b.Path, b.Err)
			_, _ = fmt.Fprintf(out, "  chaos cannot tell which fault it records or whether that fault is live. Check it by hand (and revert its fault, if any), then: chaos recover --discard %s\n", b.Path)
		}
	}()
	if len(entries) == 0 {
		if len(bad) == 0 {
			_, _ = fmt.Fprintln(out, "nothing to recover: every fault in the ledger is reverted")
		}
		return res, nil
	}
	byPlugin := map[string][]safety.Entry{}
	for _, e := range entries {
		if !opts.force {
			if alive, why := ledger.RunnerAlive(e); alive {
				_, _ = fmt.Fprintf(out, "skipped %s: %s and will revert it; --force to revert anyway\n", e.ID, why)
				continue
			}
		}
		byPlugin[e.Plugin] = append(byPlugin[e.Plugin], e)
	}
	names := make([]string, 0, len(byPlugin))
	for n := range byPlugin {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		es := byPlugin[name]
		// Faults first: a preparation's revert would also end the faults
		// riding on it, but each revert's report stays true this way.
		sort.SliceStable(es, func(i, j int) bool { return !es[i].Prepared && es[j].Prepared })
		failed, err := recoverPlugin(ctx, ledger, name, es, opts, out)
		res.failed += failed
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// recoverPlugin recovers the entries of one plugin through a fresh plugin
// process (started again if one stops answering), by handle where the entry
// has one and by the entry's id always; every call to it has a deadline.
func recoverPlugin(ctx context.Context, ledger *safety.Ledger, name string, es []safety.Entry, opts recoverOptions, out io.Writer) (int, error) {
	failed := 0
	var pl *freshPlugin
	defer func() { pl.close(opts.callTimeout) }()
	for _, e := range es {
		// The old plugin may have outlived its runner: stopped (SIGSTOP, a
		// debugger), its parent-death signal lost, its own parent check not
		// yet due. It reverts on SIGTERM; one that does not gets SIGKILL.
		// Either way it is gone before a fresh plugin's "unknown handle" is
		// taken as "already ended", or an entry without a handle is closed.
		stopped, err := safety.StopProcess(ctx, e.PluginPID, e.PluginStart, opts.grace)
		if err != nil {
			failed++
			_ = ledger.Note(e.ID, "recover failed: could not stop its plugin process: "+err.Error())
			_, _ = fmt.Fprintf(out, "FAILED %s (%s on %s): could not stop its plugin process: %v\n", e.ID, e.Plugin, e.TargetKey, err)
			continue
		}
		if pl == nil {
			if pl, err = openFresh(ctx, name, opts.callTimeout); err != nil {
				failed++
				_, _ = fmt.Fprintf(out, "FAILED %s: cannot start plugin %s: %v\n", e.ID, name, err)
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, opts.callTimeout)
		// By handle when one was recorded, and always by the entry's id: a
		// runner that died between its intent and the plugin's answer left
		// no handle, and a plugin whose faults outlive its process reverts
		// by the id alone.
		was, err := pl.revertBy(cctx, e.Handle, e.ID)
		timedOut := cctx.Err() != nil
		cancel()
		if err != nil {
			failed++
			if timedOut {
				err = fmt.Errorf("plugin %s did not answer within %s (it was killed; a fresh one serves the next entry): %w", name, opts.callTimeout, err)
				pl.close(opts.callTimeout)
				pl = nil
			}
			_ = ledger.Note(e.ID, "recover failed: "+err.Error())
			_, _ = fmt.Fprintf(out, "FAILED %s (%s on %s, handle %s): %v\n", e.ID, e.Plugin, e.TargetKey, e.Handle, err)
			continue
		}
		if e.Handle == "" {
			how := fmt.Sprintf("its plugin process (pid %d) had ended", e.PluginPID)
			if stopped != safety.AlreadyGone {
				how = fmt.Sprintf("its plugin process (pid %d) was still running and %s", e.PluginPID, stopped)
			}
			verb, fresh := "closed", fmt.Sprintf("a fresh %s plugin holds nothing for id %s (what it injected lived in the process that ended)", name, e.ID)
			if was {
				verb, fresh = "reverted", fmt.Sprintf("a fresh %s plugin reverted it by id %s", name, e.ID)
			}
			_ = ledger.Note(e.ID, "recovered: no handle was recorded; "+how+"; "+fresh)
			if err := ledger.Reverted(e.ID); err != nil {
				return failed, err
			}
			_, _ = fmt.Fprintf(out, "%s %s (%s on %s): the runner died before the plugin answered; %s; %s\n", verb, e.ID, e.Plugin, e.TargetKey, how, fresh)
			continue
		}
		if err := ledger.Reverted(e.ID); err != nil {
			return failed, err
		}
		state := "it had already ended (lease ran out or its plugin exited)"
		if was {
			state = "it was still in effect"
		}
		if stopped != safety.AlreadyGone {
			state += fmt.Sprintf("; its old plugin process (pid %d) %s", e.PluginPID, stopped)
		}
		_, _ = fmt.Fprintf(out, "reverted %s (%s on %s, handle %s): %s\n", e.ID, e.Plugin, e.TargetKey, e.Handle, state)
	}
	return failed, nil
}

// freshPlugin is a plugin process recover started, with its identity, so
// that a Close that does not finish can be cut short with SIGKILL.
type freshPlugin struct {
	engine.FaultPlugin
	pid   int
	start uint64
}

// openFresh starts the named plugin, bounded by timeout.
func openFresh(ctx context.Context, name string, timeout time.Duration) (*freshPlugin, error) {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pl, err := engine.ExecPlugins{Command: selfPlugin, Log: os.Stderr}.Open(octx, name)
	if err != nil {
		return nil, err
	}
	f := &freshPlugin{FaultPlugin: pl, pid: pl.Pid()}
	f.start, _ = safety.ProcessStart(f.pid)
	return f, nil
}

// revertBy reverts by handle and id where the plugin speaks the protocol
// that has ids (every plugin built with this SDK), by handle otherwise.
func (f *freshPlugin) revertBy(ctx context.Context, handle, id string) (bool, error) {
	if r, ok := f.FaultPlugin.(interface {
		RevertBy(ctx context.Context, handle, id string) (bool, error)
	}); ok {
		return r.RevertBy(ctx, handle, id)
	}
	if handle == "" {
		return false, nil
	}
	return f.Revert(ctx, handle)
}

// close ends the plugin within timeout: Close asks it to stop, and if that
// does not finish in time (the plugin hangs), the process is killed, which
// ends the Close.
func (f *freshPlugin) close(timeout time.Duration) {
	if f == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Close()
	}()
	select {
	case <-done:
		return
	case <-time.After(timeout):
	}
	// The grace is over: SIGKILL at once (grace of zero would mean the
	// default, so use the smallest one).
	_, _ = safety.StopProcess(context.Background(), f.pid, f.start, time.Millisecond)
	select {
	case <-done:
	case <-time.After(timeout):
		// Close is stuck although its process is gone; the goroutine ends
		// with this short-lived command.
	}
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
