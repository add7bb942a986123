package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// requestsSeen is the fake world's plugin, keeping the parameters of every
// inject: what the plugin is given.
type requestsSeen struct {
	*world
	mu     sync.Mutex
	params []string
}

func (p *requestsSeen) Open(context.Context, string) (engine.FaultPlugin, error) { return p, nil }

func (p *requestsSeen) Inject(ctx context.Context, req sdk.Request) (string, error) {
	p.mu.Lock()
	p.params = append(p.params, string(req.Params))
	p.mu.Unlock()
	return p.world.Inject(ctx, req)
}

// TestSecretParameterReachesOnlyThePlugin: a `with` parameter read from the
// environment is given to the plugin as it is, and shows as *** in the
// record and the logs, in no form (escaped, cut short) other than that.
func TestSecretParameterReachesOnlyThePlugin(t *testing.T) {
	const secret = `Zq8"Kx\Vm2-Wp7Lr4Tn9Yb6Hc3Jd5Gf1Xs0Qa8Ue2Io4Pk7-end`
	t.Setenv("CHAOS_ENGINE_TEST_SECRET", secret)
	w := newWorld()
	seen := &requestsSeen{world: w}
	var logs bytes.Buffer
	opts := w.options()
	opts.Plugins = seen
	opts.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	exp := experiment(t, "    - {plugin: fake, target: link, after: 0s, for: 40ms, with: {token: \"${env:CHAOS_ENGINE_TEST_SECRET}\"}}\n", "")

	rec := engine.Run(t.Context(), exp, opts)
	require.Equal(t, reports.Passed, rec.Verdict, rec.Reason)

	seen.mu.Lock()
	params := append([]string(nil), seen.params...)
	seen.mu.Unlock()
	require.Len(t, params, 1, "one inject")
	var got map[string]string
	require.NoError(t, json.Unmarshal([]byte(params[0]), &got))
	require.Equal(t, secret, got["token"], "the plugin's request is where the secret is revealed")

	require.Len(t, rec.Faults, 1)
	require.Equal(t, experiments.Redacted, rec.Faults[0].Params["token"], "the report shows the parameter as ***")
	record, err := json.Marshal(rec)
	require.NoError(t, err)
	j, _ := json.Marshal(secret)
	for _, out := range []struct{ what, text string }{{"the record", string(record)}, {"the logs", logs.String()}} {
		for _, form := range []string{secret, string(j[1 : len(j)-1])} {
			for i := 0; i+8 <= len(form); i++ {
				require.False(t, strings.Contains(out.text, form[i:i+8]), "%s shows a piece of the secret (%q)", out.what, form[i:i+8])
			}
		}
	}
}

// TestValidateFaultsGivesThePluginTheSecretValue: checking a fault's
// parameters is a plugin request too, so the plugin checks the value, not
// *** (which is not a duration).
func TestValidateFaultsGivesThePluginTheSecretValue(t *testing.T) {
	exp := validExperiment(t, "    - {plugin: latency, target: link, with: {delay: \"${env:DELAY}\"}, for: 3s}\n", map[string]string{"DELAY": "25ms"})
	probs, err := engine.ValidateFaults(t.Context(), exp, &plugins{})
	require.NoError(t, err)
	require.Empty(t, probs, "the plugin must be given 25ms")
}
