package engine

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/safety"
)

// Recovery: what `chaos recover` does, moved here from the CLI unchanged so
// that every way of starting chaos shares it. It reverts, through a fresh
// plugin process, what a killed runner left open in the ledger.

const (
	// DefaultRecoverCallTimeout bounds each call to a fresh plugin in
	// recover.
	DefaultRecoverCallTimeout = 20 * time.Second
	// DefaultRecoverGrace is how long an orphaned plugin gets to revert and
	// exit after SIGTERM before it gets SIGKILL.
	DefaultRecoverGrace = 5 * time.Second
)

// RecoverOptions configure Recover; zero durations take the defaults.
type RecoverOptions struct {
	// Ledger is the state directory's ledger.
	Ledger *safety.Ledger
	// Force reverts the faults of runs whose runner is still alive too.
	Force bool
	// CallTimeout bounds each call to a fresh plugin.
	CallTimeout time.Duration
	// Grace is how long an orphaned plugin gets after SIGTERM.
	Grace time.Duration
	// Out receives one line per entry: what was done with it.
	Out io.Writer
}

// RecoverResult counts what Recover could not do.
type RecoverResult struct {
	Failed     int // entries still open for another reason than a live runner
	Unreadable int // ledger files that are not readable entries
}

// recoverOptions are RecoverOptions as the steps below use them.
type recoverOptions struct {
	force       bool
	callTimeout time.Duration
	grace       time.Duration
	open        func(ctx context.Context, name string, timeout time.Duration) (*freshPlugin, error)
	clock       Clock
}

// Recover reverts every open ledger entry whose runner is gone, plugin
// by plugin, faults before the preparations they ride on, and names every
// ledger file it could not read: one bad file does not stop the rest.
func (rn *Runner) Recover(ctx context.Context, o RecoverOptions) (RecoverResult, error) {
	ledger, out := o.Ledger, o.Out
	if out == nil {
		out = io.Discard
	}
	opts := recoverOptions{force: o.Force, callTimeout: o.CallTimeout, grace: o.Grace, open: rn.openFresh, clock: clock.Or(rn.Clock)}
	if opts.callTimeout <= 0 {
		opts.callTimeout = DefaultRecoverCallTimeout
	}
	if opts.grace <= 0 {
		opts.grace = DefaultRecoverGrace
	}
	var res RecoverResult
	entries, bad, err := ledger.Read()
	if err != nil {
		return res, fmt.Errorf("read ledger: %w", err)
	}
	res.Unreadable = len(bad)
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
		res.Failed += failed
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
	defer func() { pl.close(opts.clock, opts.callTimeout) }()
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
			if pl, err = opts.open(ctx, name, opts.callTimeout); err != nil {
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
				pl.close(opts.clock, opts.callTimeout)
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
	FaultPlugin
	pid   int
	start uint64
}

// openFresh starts the named plugin, bounded by timeout.
func (rn *Runner) openFresh(ctx context.Context, name string, timeout time.Duration) (*freshPlugin, error) {
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pl, err := ExecPlugins{Command: rn.PluginCommand, Log: rn.Log}.Open(octx, name)
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
func (f *freshPlugin) close(c Clock, timeout time.Duration) {
	if f == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Close()
	}()
	t := c.NewTimer(timeout)
	select {
	case <-done:
		t.Stop()
		return
	case <-t.C():
	}
	// The grace is over: SIGKILL at once (grace of zero would mean the
	// default, so use the smallest one).
	_, _ = safety.StopProcess(context.Background(), f.pid, f.start, time.Millisecond)
	t = c.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C():
		// Close is stuck although its process is gone; the goroutine ends
		// with this short-lived command.
	}
}
