package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// statusPlugins opens the fake as a plugin with the Status ability.
type statusPlugins struct {
	*world
	err error
}

func (p statusPlugins) Open(context.Context, string) (engine.FaultPlugin, error) {
	return statusPlugin(p), nil
}

type statusPlugin struct {
	*world
	err error
}

// Status answers for a handle it has just reverted, as podkill does.
func (p statusPlugin) Status(_ context.Context, handle string) (sdk.Status, error) {
	if p.err != nil {
		return sdk.Status{}, p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return sdk.Status{Active: p.active[handle], Detail: handle + ": pod web-1 killed, replacement Ready after 1.2s"}, nil
}

func TestRevertedFaultRecordsThePluginStatusDetail(t *testing.T) {
	w := newWorld()
	opts := w.options()
	opts.Plugins = statusPlugins{world: w}
	rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)
	require.Len(t, rec.Faults, 1, "one fault in the record")
	require.Equal(t, "reverted", rec.Faults[0].State, "the fault was reverted")
	require.Equal(t, "h1: pod web-1 killed, replacement Ready after 1.2s", rec.Faults[0].Detail,
		"the plugin's Status detail after the revert is in the report's fault")
}

func TestFaultDetailIsEmptyWithoutAnAnswer(t *testing.T) {
	for name, plugins := range map[string]func(*world) engine.Plugins{
		"no Status ability": func(w *world) engine.Plugins { return w },
		"Status fails":      func(w *world) engine.Plugins { return statusPlugins{world: w, err: errors.New("status: unavailable")} },
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			opts := w.options()
			opts.Plugins = plugins(w)
			rec := engine.Run(t.Context(), experiment(t, oneFault, ""), opts)
			require.Equal(t, reports.Passed, rec.Verdict, "a missing detail never changes the verdict: %s", rec.Reason)
			require.Len(t, rec.Faults, 1, "one fault in the record")
			require.Empty(t, rec.Faults[0].Detail, "nothing said, nothing recorded")
		})
	}
}
