package sdk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

// buggyFault is fileFault with the bugs a plugin may have, chosen by the
// file name: "inject-panics" panics in Inject (as a jitter of 1,500,000h
// once did in the latency plugin), "goroutine-panics" injects and then
// panics in a goroutine it started under sdk.Guard, and
// "goroutine-panics-first" waits for that panic to be handled before its
// Inject returns (the revert the panic started cannot have seen it).
type buggyFault struct{ fileFault }

func (b buggyFault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	switch filepath.Base(path(req)) {
	case "inject-panics":
		panic("integer divide by zero")
	case "goroutine-panics", "goroutine-panics-first":
		h, err := b.fileFault.Inject(ctx, req)
		if err != nil {
			return "", err
		}
		guard := sdk.Guard(ctx)
		handled := make(chan struct{})
		go func() {
			defer close(handled)
			defer guard()
			panic("nil map write in a worker")
		}()
		if filepath.Base(path(req)) == "goroutine-panics-first" {
			<-handled
		}
		return h, nil
	}
	return b.fileFault.Inject(ctx, req)
}

// A handler that panics in a real plugin process: the process lives on,
// what it held is reverted, the host gets ErrPluginPanicked, and the plugin
// takes no new faults.
func TestHandlerPanicInPluginProcess(t *testing.T) {
	p := launchServing(t, "panic")
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	h, err := p.Fault.Inject(t.Context(), request(held))
	require.NoError(t, err)
	require.FileExists(t, held)

	_, err = p.Fault.Inject(t.Context(), request(filepath.Join(dir, "inject-panics")))
	require.ErrorIs(t, err, sdk.ErrPluginPanicked, "a panicking Inject must reach the host as ErrPluginPanicked")
	require.ErrorContains(t, err, "integer divide by zero", "the host's message must say what panicked")
	require.NoFileExists(t, held, "the plugin must revert what it held when a handler panics")
	require.False(t, p.Exited(), "a recovered panic must not end the plugin process")

	require.ErrorIs(t, p.Fault.Renew(t.Context(), h, time.Minute), sdk.ErrPluginPanicked, "a plugin that panicked must say so at the next renewal")
	_, err = p.Fault.Inject(t.Context(), request(filepath.Join(dir, "later")))
	require.ErrorIs(t, err, sdk.ErrPluginPanicked, "a plugin that panicked takes no new faults")
	require.NoFileExists(t, filepath.Join(dir, "later"))
	_, err = p.Fault.Revert(t.Context(), h)
	require.NoError(t, err, "reverting in a plugin that panicked must still work")
}

// A panic in a goroutine the fault started under sdk.Guard: the process
// lives on, everything held is reverted, and the host learns at its next
// renewal.
func TestGuardedGoroutinePanicInPluginProcess(t *testing.T) {
	p := launchServing(t, "panic")
	dir := t.TempDir()
	held := filepath.Join(dir, "held")
	_, err := p.Fault.Inject(t.Context(), request(held))
	require.NoError(t, err)
	bad := filepath.Join(dir, "goroutine-panics")
	h, err := p.Fault.Inject(t.Context(), request(bad))
	if err != nil {
		// The goroutine panicked before the inject answered: see
		// TestGoroutinePanicBeforeInjectAnswers.
		require.ErrorIs(t, err, sdk.ErrPluginPanicked)
	} else {
		require.Eventually(t, func() bool {
			return errors.Is(p.Fault.Renew(t.Context(), h, time.Minute), sdk.ErrPluginPanicked)
		}, 30*time.Second, 10*time.Millisecond, "the renewal after a goroutine's panic must answer ErrPluginPanicked")
	}
	requireGone(t, held, bad)
	require.False(t, p.Exited(), "a guarded goroutine's panic must not end the plugin process")
}

// A guarded goroutine that panics while its fault's Inject is still
// running: the revert that panic starts cannot see the fault (it is not
// tracked yet), so the Inject answers ErrPluginPanicked and reverts it
// itself; nothing is left.
func TestGoroutinePanicBeforeInjectAnswers(t *testing.T) {
	p := launchServing(t, "panic")
	dir := t.TempDir()
	held, bad := filepath.Join(dir, "held"), filepath.Join(dir, "goroutine-panics-first")
	_, err := p.Fault.Inject(t.Context(), request(held))
	require.NoError(t, err)
	_, err = p.Fault.Inject(t.Context(), request(bad))
	require.ErrorIs(t, err, sdk.ErrPluginPanicked, "the inject answers the panic that happened while it ran")
	requireGone(t, held, bad)
	require.False(t, p.Exited())
}

// requireGone waits (bounded) for the files of faults to be reverted.
func requireGone(t *testing.T, files ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, f := range files {
			if _, err := os.Stat(f); !os.IsNotExist(err) {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond, "every fault the plugin held must be reverted after the panic: %v", files)
}

// TestEveryHandlerRecovers: whichever method of a plugin panics, the host
// gets ErrPluginPanicked and the faults the plugin held are reverted (unless
// it is Revert itself that panics: then the host is told the revert failed).
func TestEveryHandlerRecovers(t *testing.T) {
	for _, method := range []string{"describe", "validate", "inject", "revert", "status"} {
		t.Run(method, func(t *testing.T) {
			dir := t.TempDir()
			held := filepath.Join(dir, "held")
			c := sdktest.Connect(t, sdktest.PanicIn(fileFault{}, "none"))
			bug := sdktest.Connect(t, sdktest.PanicIn(fileFault{}, method))
			var err error
			if method != "inject" {
				_, err = bug.Inject(t.Context(), request(held))
				require.NoError(t, err)
			}
			switch method {
			case "describe":
				_, err = bug.Describe(t.Context())
			case "validate":
				_, err = bug.Validate(t.Context(), request(held))
			case "inject":
				_, err = bug.Inject(t.Context(), request(held))
			case "revert":
				_, err = bug.Revert(t.Context(), held)
			case "status":
				_, err = bug.Status(t.Context(), held)
			}
			require.ErrorIs(t, err, sdk.ErrPluginPanicked, "a panic in %s must reach the host as ErrPluginPanicked", method)
			if method == "revert" {
				require.ErrorContains(t, err, "reverting what it held failed", "the host must be told a panicking revert left the fault")
				_, err = c.Revert(t.Context(), held)
				require.NoError(t, err)
			}
			require.NoFileExists(t, held, "nothing may be left held after a panic in %s", method)
		})
	}
}

// A request larger than the protocol carries is ErrMessageTooLarge on the
// host, with the limit in the message, not a raw gRPC error.
func TestMessageTooLargeIsTyped(t *testing.T) {
	c := sdktest.Connect(t, fileFault{})
	big := `{"path":"` + strings.Repeat("x", 5<<20) + `"}`
	_, err := c.Validate(t.Context(), sdk.Request{Target: sdk.Target{Kind: "host"}, Params: []byte(big)})
	require.ErrorIs(t, err, sdk.ErrMessageTooLarge, "a 5 MB request must be refused as too large")
	require.ErrorContains(t, err, "at most 4 MiB", "the message gives the limit")
}
