package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
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
	// asked is when the plugin was asked for it: its lease runs from then
	// at the latest.
	asked time.Time
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
		// No parameters: they may hold secrets, and a revert needs only the
		// handle or the id. The target is named by the keys of the things
		// it resolved to.
		things, keys := r.resolvedKeys(h.name, h.req.Target)
		err := r.opts.Ledger.Intend(safety.Entry{
			ID: h.id, RunID: r.runID(), Plugin: h.name, TargetKey: strings.Join(things, ","), Keys: keys,
			Prepared: h.prepared, RunnerPID: os.Getpid(), PluginPID: h.plugin.Pid(), LeaseTTL: r.opts.LeaseTTL,
			Experiment: r.exp.Metadata.Name, File: r.exp.File,
		})
		if err != nil {
			return fmt.Errorf("record intent in the ledger (nothing was injected): %w", err)
		}
	}
	req := h.req
	req.LeaseTTL = r.opts.LeaseTTL
	// The ledger entry's id names the injection for good: a fresh plugin
	// can revert by it when the handle never reached the ledger.
	req.ID = h.id
	h.asked = r.opts.Clock.Now()
	// Once asked, the plugin's answer is awaited even if the run is being
	// stopped meanwhile: a fault injected under a cancelled call would be
	// live with no handle to revert it by. Its own timeout bounds the wait,
	// and so does the plugin being found not answering.
	r.busyFor(r.opts.RevertTimeout)
	pctx, cancel := r.pluginCall(ctx, h.name)
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
	r.busyFor(r.opts.RevertTimeout)
	rctx, cancel := r.pluginCall(ctx, h.name)
	defer cancel()
	if _, err := h.plugin.Revert(rctx, h.handle); err != nil {
		if cause := context.Cause(rctx); errors.Is(cause, ErrPluginNotAnswering) {
			err = fmt.Errorf("revert: %w", cause)
		}
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

// pluginCall is the context of one call that changes something in a
// plugin (prepare, inject, revert): it outlives the run's abort, is bounded
// by RevertTimeout, and ends at once, with ErrPluginNotAnswering as its
// cause, when the lease keeper finds the plugin not answering, so that a
// hung plugin costs one lease TTL and not a revert timeout per hold.
func (r *run) pluginCall(ctx context.Context, plugin string) (context.Context, context.CancelFunc) {
	cctx, cancelTimeout := context.WithTimeout(context.WithoutCancel(ctx), r.opts.RevertTimeout)
	cctx, cancel := context.WithCancelCause(cctx)
	gone := r.silent.done(plugin)
	stop := context.AfterFunc(gone, func() { cancel(context.Cause(gone)) })
	return cctx, func() {
		stop()
		cancel(nil)
		cancelTimeout()
	}
}

// silent is the set of plugins found not answering. A plugin in it is asked
// nothing more (every call in flight ends at once) and is killed at
// cleanup instead of being asked to close.
type silent struct {
	mu sync.Mutex
	m  map[string]silentPlugin
}

type silentPlugin struct {
	ctx    context.Context // done once the plugin is found not answering
	cancel context.CancelCauseFunc
}

func (s *silent) get(plugin string) silentPlugin {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]silentPlugin{}
	}
	sp, ok := s.m[plugin]
	if !ok {
		// Not a call's context but a signal that only mark ends: the calls
		// it cuts short carry their own deadlines and the run's values.
		ctx, cancel := context.WithCancelCause(context.Background())
		sp = silentPlugin{ctx: ctx, cancel: cancel}
		s.m[plugin] = sp
	}
	return sp
}

// done is a context that ends when plugin is found not answering.
func (s *silent) done(plugin string) context.Context { return s.get(plugin).ctx }

// mark records that plugin is not answering, with why.
func (s *silent) mark(plugin string, err error) {
	s.get(plugin).cancel(fmt.Errorf("%w: %w", ErrPluginNotAnswering, err))
}

// marked reports whether plugin was found not answering.
func (s *silent) marked(plugin string) bool { return s.get(plugin).ctx.Err() != nil }

// heartbeat is the proof that the run is making progress. The fault phase's
// loop beats on every turn (and turns at least every beatEvery); a step
// outside it that blocks for a known, bounded time says so first. The lease
// keeper renews only while the heartbeat is fresh: a runner stuck anywhere
// lets its plugins revert by lease instead of keeping faults live.
type heartbeat struct {
	mu    sync.Mutex
	until time.Time // alive until then without another beat
}

// aliveUntil extends the heartbeat to t, never shortening it.
func (hb *heartbeat) aliveUntil(t time.Time) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if t.After(hb.until) {
		hb.until = t
	}
}

func (hb *heartbeat) alive(now time.Time) bool {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	return now.Before(hb.until)
}

// staleAfter is how long after a beat the run still counts as alive: half a
// lease, so a stuck runner's leases stop being renewed well before they run
// out, and one renewal missed by a busy machine costs nothing.
func (r *run) staleAfter() time.Duration { return r.opts.LeaseTTL / 2 }

// beatEvery is how often the fault phase's loop turns, at least, to beat.
func (r *run) beatEvery() time.Duration { return r.opts.LeaseTTL / 6 }

// beat says the run is making progress now.
func (r *run) beat() { r.heart.aliveUntil(r.opts.Clock.Now().Add(r.staleAfter())) }

// busyFor says the run is about to block for at most d on a bounded step
// (probes with their timeouts, a revert with its own): alive until then.
func (r *run) busyFor(d time.Duration) {
	r.heart.aliveUntil(r.opts.Clock.Now().Add(d + r.staleAfter()))
}

// keepLeases renews every hold's lease at a third of its TTL until ctx
// ends, while the run's heartbeat is fresh; the holds are renewed
// concurrently, each call bounded so that the round ends by the time a
// lease would run out. A hold is lost, and reported on lost once, when the
// plugin says it no longer holds it (its lease ran out), when the plugin
// process exited, or when no renewal succeeded for a whole TTL (renewals
// that time out: the plugin is not answering, and is marked so).
func (r *run) keepLeases(ctx context.Context, lost chan<- error) {
	ttl := r.opts.LeaseTTL
	every := ttl / 3
	renewed := map[string]time.Time{} // last renewal the plugin confirmed, by hold
	reported := map[string]bool{}
	paused := false
	next := every
	for {
		t := r.opts.Clock.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		next = every
		now := r.opts.Clock.Now()
		if !r.heart.alive(now) {
			if !paused {
				r.log.Info("the run has shown no progress for half a lease; leases are no longer renewed, so the plugins revert by themselves", "leaseTTL", ttl)
			}
			paused = true
			continue
		}
		paused = false
		var holds []*hold
		for _, h := range r.holds.snapshot() {
			if !reported[h.id] {
				holds = append(holds, h)
			}
		}
		errs := make([]error, len(holds))
		var wg sync.WaitGroup
		for i, h := range holds {
			if _, ok := renewed[h.id]; !ok {
				renewed[h.id] = h.asked
			}
			// A renewal waits no longer than the lease has left: past
			// that, its answer no longer matters.
			left := renewed[h.id].Add(ttl).Sub(now)
			if left <= 0 {
				errs[i] = context.DeadlineExceeded
				continue
			}
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, min(every, left))
				defer cancel()
				errs[i] = h.plugin.Renew(rctx, h.handle, ttl)
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		after := r.opts.Clock.Now()
		for i, h := range holds {
			err := errs[i]
			if err == nil {
				renewed[h.id] = now
				continue
			}
			var report error
			switch {
			case errors.Is(err, sdk.ErrUnknownHandle), errors.Is(err, sdk.ErrPluginExited):
				report = fmt.Errorf("%s: %w: %w", h.what, ErrLeaseLost, err)
			case !after.Before(renewed[h.id].Add(ttl)):
				r.silent.mark(h.name, err)
				report = fmt.Errorf("%s: %w: no renewal succeeded for %s (the %s plugin is not answering): %w", h.what, ErrLeaseLost, ttl, h.name, err)
			default:
				// Try again no later than when the lease would run out.
				next = max(min(next, renewed[h.id].Add(ttl).Sub(after)), time.Millisecond)
				continue
			}
			reported[h.id] = true
			select {
			case lost <- &lostLease{plugin: h.name, err: report}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// lostLease is what the lease keeper reports: which plugin held the lease,
// and why it was lost.
type lostLease struct {
	plugin string
	err    error
}

func (l *lostLease) Error() string { return l.err.Error() }
func (l *lostLease) Unwrap() error { return l.err }

// defaultLeaseTTL is how long a fault outlives a runner that stopped
// renewing it.
const defaultLeaseTTL = 10 * time.Second
