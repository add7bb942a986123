package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/safety"
)

// hold is something a run holds in a plugin: a prepared target or an
// injected fault. Every hold is written to the ledger before the plugin is
// asked for it, renewed while the run is healthy, and released on every
// path; the plugin releases it by itself if the renewals stop.
type hold struct {
	id       string // ledger entry id
	plugin   FaultPlugin
	name     string // plugin name
	req      sdk.Request
	prepared bool
	handle   string
	what     string // for messages: "latency on backend-link"
}

// holds is the set of holds in effect, shared by the run's loop, its
// reverts and its lease keeper.
type holds struct {
	mu sync.Mutex
	m  map[string]*hold
}

func (hs *holds) add(h *hold) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[string]*hold{}
	}
	hs.m[h.id] = h
}

func (hs *holds) remove(h *hold) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	delete(hs.m, h.id)
}

func (hs *holds) snapshot() []*hold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]*hold, 0, len(hs.m))
	for _, h := range hs.m {
		out = append(out, h)
	}
	return out
}

// targetKey names a target for locks and the ledger: two runs that would
// fault the same thing get the same key.
func targetKey(t sdk.Target) string {
	switch {
	case t.Endpoint != nil:
		return "endpoint:" + t.Endpoint.Listen
	default:
		return t.Kind + ":" + t.Name
	}
}

// acquire records the intent in the ledger, then asks the plugin to prepare
// or inject, then records the handle. If the ledger cannot be written,
// nothing is asked of the plugin: a fault that is not recorded could not
// be recovered.
func (r *run) acquire(ctx context.Context, h *hold) error {
	// A stopped run asks nothing more; checked before the intent is
	// written, so that it never leaves an intent no plugin was asked for.
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.opts.Ledger != nil {
		// No parameters and no resolved target: they may hold secrets, and
		// a revert needs only the handle or the id.
		err := r.opts.Ledger.Intend(safety.Entry{
			ID: h.id, RunID: r.rec.RunID, Plugin: h.name, TargetKey: targetKey(h.req.Target),
			Prepared: h.prepared, RunnerPID: os.Getpid(), PluginPID: h.plugin.Pid(), LeaseTTL: r.opts.LeaseTTL,
			Experiment: r.exp.Metadata.Name, File: r.exp.File,
		})
		if err != nil {
			return fmt.Errorf("record intent in the ledger (nothing was injected): %w", err)
		}
	}
	req := h.req
	req.LeaseTTL = r.opts.LeaseTTL
	// Once asked, the plugin's answer is awaited even if the run is being
	// stopped meanwhile: a fault injected under a cancelled call would be
	// live with no handle to revert it by. Its own timeout bounds the wait.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.RevertTimeout)
	defer cancel()
	var handle string
	var err error
	if h.prepared {
		handle, err = h.plugin.Prepare(pctx, req)
	} else {
		handle, err = h.plugin.Inject(pctx, req)
	}
	if err != nil {
		// The plugin said no, so nothing is held; the entry is closed. A
		// plugin that died mid-call is the exception: its entry stays open
		// for `chaos recover`.
		if r.opts.Ledger != nil && !errors.Is(err, sdk.ErrPluginExited) {
			_ = r.opts.Ledger.Note(h.id, "not injected: "+err.Error())
			_ = r.opts.Ledger.Reverted(h.id)
		}
		return err
	}
	h.handle = handle
	if handle == "" {
		// Nothing to hold (a plugin with nothing to prepare).
		if r.opts.Ledger != nil {
			_ = r.opts.Ledger.Reverted(h.id)
		}
		return nil
	}
	r.holds.add(h)
	if r.opts.Ledger != nil {
		if err := r.opts.Ledger.Injected(h.id, handle); err != nil {
			// The fault is live but the ledger lacks its handle: revert
			// now rather than run a fault recover could not find.
			_ = r.release(ctx, h)
			return fmt.Errorf("record handle in the ledger (the fault was reverted): %w", err)
		}
	}
	return nil
}

// release reverts a hold under a context no abort can cancel, with its own
// timeout, and closes its ledger entry once the plugin confirmed.
func (r *run) release(ctx context.Context, h *hold) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.RevertTimeout)
	defer cancel()
	if _, err := h.plugin.Revert(rctx, h.handle); err != nil {
		if r.opts.Ledger != nil {
			_ = r.opts.Ledger.Note(h.id, "revert failed: "+err.Error())
		}
		return err
	}
	r.holds.remove(h)
	if r.opts.Ledger != nil {
		if err := r.opts.Ledger.Reverted(h.id); err != nil {
			return fmt.Errorf("reverted, but the ledger could not record it (chaos recover will revert it again, harmlessly): %w", err)
		}
	}
	return nil
}

// keepLeases renews every hold's lease at a third of its TTL until ctx
// ends. A renewal the plugin refuses means the lease ran out and the plugin
// reverted on its own; that is reported on lost, once per hold.
func (r *run) keepLeases(ctx context.Context, lost chan<- error) {
	every := r.opts.LeaseTTL / 3
	reported := map[string]bool{}
	for {
		t := r.opts.Clock.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, h := range r.holds.snapshot() {
			rctx, cancel := context.WithTimeout(ctx, every)
			err := h.plugin.Renew(rctx, h.handle, r.opts.LeaseTTL)
			cancel()
			if err == nil || ctx.Err() != nil || reported[h.id] {
				continue
			}
			if errors.Is(err, sdk.ErrUnknownHandle) || errors.Is(err, sdk.ErrPluginExited) {
				reported[h.id] = true
				select {
				case lost <- fmt.Errorf("%s: %w", h.what, err):
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

// defaultLeaseTTL is how long a fault outlives a runner that stopped
// renewing it.
const defaultLeaseTTL = 10 * time.Second
