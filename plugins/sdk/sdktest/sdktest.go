// Package sdktest is the conformance test every fault plugin runs. It serves
// the plugin over real gRPC inside the test process, so the adapters, the
// encoding and the plugin's own code are all exercised, and checks the
// promises of the sdk.Fault contract: inject takes effect, revert ends it,
// reverting twice is fine, a cancelled context is honoured and leaves
// nothing behind.
package sdktest

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// Case describes, for one plugin, how to ask for a fault and how to see it.
type Case struct {
	// Request returns a valid request against real things the test set up.
	Request func(t *testing.T) sdk.Request
	// Invalid are requests that Validate must reject, each with a name.
	Invalid map[string]sdk.Request
	// Check asserts, by looking at the real world and not at the plugin's
	// memory, that the fault is in effect (active) or not.
	Check func(t *testing.T, active bool)
	// Fresh returns a new instance of the plugin, as a restarted plugin
	// process would be: it must revert from a handle alone (what `chaos
	// recover` does), without an error.
	Fresh func() sdk.Fault
}

// Connect serves f over real gRPC in this process and returns the host-side
// client. The connection is closed when the test ends.
func Connect(t testing.TB, f sdk.Fault) *sdk.Client {
	t.Helper()
	return ConnectClock(t, f, nil)
}

// ConnectClock is Connect with the clock the server's leases run on (nil:
// the real clock).
func ConnectClock(t testing.TB, f sdk.Fault, c clock.Clock) *sdk.Client {
	t.Helper()
	srv := sdk.NewServerClock(context.WithoutCancel(t.Context()), f, c)
	client, _ := plugin.TestPluginGRPCConn(t, false, srv.PluginMap())
	t.Cleanup(func() {
		_ = client.Close()
		require.NoError(t, srv.Close(context.WithoutCancel(t.Context())), "closing the server reverts what is left")
	})
	raw, err := client.Dispense("fault")
	require.NoError(t, err, "the plugin must be dispensable as %q", "fault")
	return raw.(*sdk.Client)
}

// Run runs the conformance suite for f.
func Run(t *testing.T, f sdk.Fault, c Case) {
	// Leases run on a fake clock: the expiry test moves time instead of
	// waiting for it.
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c2 := ConnectClock(t, f, fake)
	ctx := t.Context()

	desc, err := c2.Describe(ctx)
	require.NoError(t, err, "describe must always answer")

	t.Run("describe", func(t *testing.T) {
		require.NotEmpty(t, desc.Name, "a plugin must name itself")
		require.NotEmpty(t, desc.Version, "a plugin must say its version")
		require.NotEmpty(t, desc.TargetKinds, "a plugin must say which target kinds it takes")
		require.NotEmpty(t, desc.ParamsSchema, "a plugin must publish a parameter schema so files can be checked")
	})

	t.Run("validate", func(t *testing.T) {
		probs, err := c2.Validate(ctx, c.Request(t))
		require.NoError(t, err)
		require.Empty(t, probs, "a valid request must pass validation")
		for name, req := range c.Invalid {
			probs, err := c2.Validate(ctx, req)
			require.NoError(t, err, "invalid parameters are problems, not errors: %s", name)
			require.NotEmpty(t, probs, "validation must reject %s", name)
		}
	})

	// setUp prepares the target when the plugin can, as the engine does.
	setUp := func(t *testing.T) sdk.Request {
		req := c.Request(t)
		if desc.CanPrepare {
			h, err := c2.Prepare(ctx, req)
			require.NoError(t, err, "prepare must succeed on a valid request")
			require.NotEmpty(t, h, "a plugin that can prepare must return a handle")
			req.Prepared = h
			t.Cleanup(func() {
				_, err := c2.Revert(context.WithoutCancel(ctx), h)
				require.NoError(t, err, "reverting a prepared handle must succeed")
			})
			c.Check(t, false)
		}
		return req
	}

	t.Run("inject then revert", func(t *testing.T) {
		req := setUp(t)
		c.Check(t, false)
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err, "inject must succeed on a valid request")
		require.NotEmpty(t, h, "inject must return a handle")
		c.Check(t, true)
		st, err := c2.Status(ctx, h)
		require.NoError(t, err)
		require.True(t, st.Active, "status must say an injected fault is active")

		was, err := c2.Revert(ctx, h)
		require.NoError(t, err, "revert must succeed")
		require.True(t, was, "the first revert must find the fault active")
		c.Check(t, false)
		st, err = c2.Status(ctx, h)
		require.NoError(t, err)
		require.False(t, st.Active, "status must say a reverted fault is gone")
	})

	t.Run("revert twice is fine", func(t *testing.T) {
		req := setUp(t)
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		_, err = c2.Revert(ctx, h)
		require.NoError(t, err)
		was, err := c2.Revert(ctx, h)
		require.NoError(t, err, "a second revert must not fail: recover may run after a revert that was not recorded")
		require.False(t, was, "a second revert must report that nothing was active")
		c.Check(t, false)
	})

	t.Run("an expired lease reverts by itself", func(t *testing.T) {
		req := setUp(t)
		ttl := 300 * time.Millisecond
		req.LeaseTTL = ttl
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		// Nobody renews: once the lease's time has passed, the plugin must
		// revert on its own. The keeper arms a timer for the lease; moving
		// the clock past it fires it, and the keeper arms its next timer
		// only after the revert.
		require.NoError(t, fake.BlockUntilWithin(ctx, ttl), "the server must time the lease")
		c.Check(t, true)
		fake.Advance(ttl)
		require.NoError(t, fake.BlockUntil(ctx, 1), "the lease keeper must come back after reverting")
		st, err := c2.Status(ctx, h)
		require.NoError(t, err)
		require.False(t, st.Active, "a lease that is not renewed must run out")
		c.Check(t, false)
		require.ErrorIs(t, c2.Renew(ctx, h, time.Hour), sdk.ErrUnknownHandle, "a handle whose lease ran out cannot be renewed")
		_, err = c2.Revert(ctx, h)
		require.NoError(t, err, "reverting a handle whose lease ran out is fine")
	})

	t.Run("a renewed lease keeps the fault", func(t *testing.T) {
		req := setUp(t)
		req.LeaseTTL = time.Hour
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		require.NoError(t, c2.Renew(ctx, h, time.Hour), "renewing a live handle must succeed")
		c.Check(t, true)
		_, err = c2.Revert(ctx, h)
		require.NoError(t, err)
		require.ErrorIs(t, c2.Renew(ctx, h, time.Hour), sdk.ErrUnknownHandle, "a reverted handle cannot be renewed")
	})

	t.Run("revert by handle alone in a restarted plugin", func(t *testing.T) {
		if c.Fresh == nil {
			t.Skip("the case gives no Fresh constructor")
		}
		req := setUp(t)
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		fresh := Connect(t, c.Fresh())
		_, err = fresh.Revert(ctx, h)
		require.NoError(t, err, "a restarted plugin must accept a revert by handle alone")
		_, err = c2.Revert(ctx, h)
		require.NoError(t, err)
		c.Check(t, false)
	})

	t.Run("resolve", func(t *testing.T) {
		req := c.Request(t)
		res, err := c2.Resolve(ctx, req)
		require.NoError(t, err, "resolving a valid request's target must succeed")
		require.NotEmpty(t, res.Things, "a target must mean at least one thing")
		for _, th := range res.Things {
			require.NotEmpty(t, th.Key, "every resolved thing needs a stable key: locks and the ledger act on it")
			require.NotEmpty(t, th.Name, "every resolved thing needs a name people read")
		}
		again, err := c2.Resolve(ctx, req)
		require.NoError(t, err)
		require.Equal(t, keysOf(res), keysOf(again), "resolving the same target twice must give the same keys")
		if !desc.CanResolve {
			require.Equal(t, sdk.DefaultResolution(req.Target), res, "a plugin without the Resolver ability acts on the target as one thing")
		}
	})

	t.Run("revert by id", func(t *testing.T) {
		req := setUp(t)
		req.ID = t.Name() + "/fault"
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		c.Check(t, true)
		_, err = c2.RevertBy(ctx, h+"-other", req.ID)
		require.ErrorIs(t, err, sdk.ErrHandleMismatch, "a handle and an id that name different injections must be refused")
		c.Check(t, true)
		was, err := c2.RevertBy(ctx, "", req.ID)
		require.NoError(t, err, "revert by id alone must succeed")
		require.True(t, was, "the id names a live fault")
		c.Check(t, false)
		was, err = c2.RevertBy(ctx, h, req.ID)
		require.NoError(t, err, "a second revert, by handle and id, must not fail")
		require.False(t, was, "nothing is left to revert")
	})

	t.Run("revert by unknown id is not an error", func(t *testing.T) {
		was, err := c2.RevertBy(ctx, "", t.Name()+"/never-injected")
		require.NoError(t, err, "an id nothing was injected under is nothing to revert, not an error")
		require.False(t, was)
	})

	t.Run("revert by id alone in a restarted plugin", func(t *testing.T) {
		if c.Fresh == nil {
			t.Skip("the case gives no Fresh constructor")
		}
		req := setUp(t)
		req.ID = t.Name() + "/fault"
		h, err := c2.Inject(ctx, req)
		require.NoError(t, err)
		fresh := Connect(t, c.Fresh())
		was, err := fresh.RevertBy(ctx, "", req.ID)
		require.NoError(t, err, "a restarted plugin must accept a revert by id alone (what recover does with an entry that has no handle)")
		if desc.CanRevertByID {
			require.True(t, was, "a plugin that reverts by id must find the fault a previous process left")
			c.Check(t, false)
		} else {
			// The fault lives in the first process; a fresh one holds
			// nothing for the id, and says so rather than pretending.
			require.False(t, was, "a plugin without RevertByID holds nothing for another process's id")
		}
		_, err = c2.RevertBy(ctx, h, req.ID)
		require.NoError(t, err)
		c.Check(t, false)
	})

	t.Run("a panicking handler reverts what the plugin holds", func(t *testing.T) {
		// A second server over the same plugin, whose Status panics: the
		// SDK must recover, revert what that server holds, answer
		// ErrPluginPanicked, and take no new faults.
		req := setUp(t)
		pc := Connect(t, panicIn(f, "status"))
		h, err := pc.Inject(ctx, req)
		require.NoError(t, err, "inject through the panicking server must work until it panics")
		c.Check(t, true)
		_, err = pc.Status(ctx, h)
		require.ErrorIs(t, err, sdk.ErrPluginPanicked, "a panic in a handler must reach the host as ErrPluginPanicked")
		c.Check(t, false)
		_, err = pc.Inject(ctx, req)
		require.ErrorIs(t, err, sdk.ErrPluginPanicked, "a plugin that panicked must take no new faults")
		_, err = pc.Describe(ctx)
		require.NoError(t, err, "a plugin that panicked still answers what it is")
	})

	t.Run("cancelled context injects nothing", func(t *testing.T) {
		req := setUp(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c2.Inject(cctx, req)
		require.Error(t, err, "inject with a cancelled context must fail")
		// gRPC refuses a cancelled call before it leaves the host, so ask the
		// plugin itself too: its own code must look at the context.
		_, err = f.Inject(cctx, req)
		require.ErrorIs(t, err, context.Canceled, "the plugin must honour a cancelled context")
		c.Check(t, false)
	})
}

func keysOf(r sdk.Resolution) []string {
	keys := make([]string, len(r.Things))
	for i, th := range r.Things {
		keys[i] = th.Key
	}
	return keys
}

// panicking wraps a fault so that one of its methods panics, as a plugin
// with a bug would; the others are the plugin's own.
type panicking struct {
	sdk.Fault
	method string
}

// panicIn returns f with method ("describe", "validate", "prepare",
// "inject", "revert" or "status") panicking. It keeps f's Preparer ability
// as it is.
func panicIn(f sdk.Fault, method string) sdk.Fault {
	p := panicking{Fault: f, method: method}
	if _, ok := f.(sdk.Preparer); ok {
		return panickingPreparer{p}
	}
	return p
}

// PanicIn is panicIn for plugins' own tests: f with one method panicking.
func PanicIn(f sdk.Fault, method string) sdk.Fault { return panicIn(f, method) }

func (p panicking) boom(method string) {
	if p.method == method {
		panic("sdktest: a bug in " + method)
	}
}

func (p panicking) Describe() sdk.Description {
	p.boom("describe")
	return p.Fault.Describe()
}

func (p panicking) Validate(ctx context.Context, req sdk.Request) []sdk.ParamProblem {
	p.boom("validate")
	return p.Fault.Validate(ctx, req)
}

func (p panicking) Inject(ctx context.Context, req sdk.Request) (string, error) {
	p.boom("inject")
	return p.Fault.Inject(ctx, req)
}

func (p panicking) Revert(ctx context.Context, h string) (bool, error) {
	p.boom("revert")
	return p.Fault.Revert(ctx, h)
}

func (p panicking) Status(ctx context.Context, h string) (sdk.Status, error) {
	p.boom("status")
	if r, ok := p.Fault.(sdk.StatusReporter); ok {
		return r.Status(ctx, h)
	}
	return sdk.Status{}, nil
}

type panickingPreparer struct{ panicking }

func (p panickingPreparer) Prepare(ctx context.Context, req sdk.Request) (string, error) {
	p.boom("prepare")
	return p.Fault.(sdk.Preparer).Prepare(ctx, req)
}
