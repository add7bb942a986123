package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// inProcess serves a real built-in plugin's Describe and Validate without a
// process: what is tested here is how its answers are placed in the file.
// The methods a validation never calls are left to the embedded nil
// interface, so calling one fails the test loudly.
type inProcess struct {
	engine.FaultPlugin
	fault  sdk.Fault
	closed *int
}

func (p inProcess) Describe(context.Context) (sdk.Description, error) { return p.fault.Describe(), nil }
func (p inProcess) Validate(ctx context.Context, req sdk.Request) ([]sdk.ParamProblem, error) {
	return p.fault.Validate(ctx, req), nil
}
func (p inProcess) Close() { *p.closed++ }

type plugins struct {
	opened, closed int
	err            error
}

func (ps *plugins) Open(_ context.Context, name string) (engine.FaultPlugin, error) {
	if ps.err != nil {
		return nil, ps.err
	}
	mk, ok := builtin.Faults()[name]
	if !ok {
		return nil, errors.New("no such plugin")
	}
	ps.opened++
	return inProcess{fault: mk(), closed: &ps.closed}, nil
}

// validExperiment is a file Load accepts, with the given faults (line 12
// on) and a host target `node` beside the endpoint `link`.
func validExperiment(t *testing.T, faults string, env map[string]string) *experiments.Experiment {
	t.Helper()
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: v, owner: {team: t}}
spec:
  hypothesis: h
  targets:
    link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}
    node: {host: {}}
  probes: {api: {http: {url: http://127.0.0.1:3/}}}
  steadyState: [api.ok]
  faults:
` + faults
	exp, err := experiments.Parse("v.yaml", []byte(src), experiments.Options{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	require.NoError(t, err, "the file must load: ValidateFaults takes loaded files")
	return exp
}

func TestValidateFaultsPlacesEveryParameterProblem(t *testing.T) {
	ps := &plugins{}
	exp := validExperiment(t, "    - plugin: latency\n      target: link\n      with: {dealy: 20ms, jitter: 5}\n      for: 3s\n", nil)
	probs, err := engine.ValidateFaults(t.Context(), exp, ps)
	require.NoError(t, err)
	type got struct {
		line, col int
		path      string
	}
	var where []got
	for _, p := range probs {
		where = append(where, got{p.Pos.Line, p.Pos.Col, p.Path})
	}
	require.Equal(t, []got{
		{14, 7, "spec.faults[0].with.delay"},   // missing: at `with`
		{14, 14, "spec.faults[0].with.dealy"},  // unknown: at its key
		{14, 27, "spec.faults[0].with.jitter"}, // bad: at its key
	}, where, "each problem is at the parameter it is about, in file order")
	require.Contains(t, probs[0].Message, "delay is required")
	require.Equal(t, `did you mean "delay"?`, probs[1].Hint, "the plugin's parameter list gives the did-you-mean")
	require.Contains(t, probs[2].Hint, "jitter around the delay", "a known parameter's hint is its description from the plugin's schema")
	require.Equal(t, 1, ps.opened)
	require.Equal(t, 1, ps.closed, "every plugin opened is closed")
}

func TestValidateFaultsChecksTheTargetKind(t *testing.T) {
	ps := &plugins{}
	exp := validExperiment(t, "    - {plugin: latency, target: node, with: {delay: 1ms}, for: 3s}\n    - {plugin: latency, target: link, with: {delay: 1ms}, for: 3s}\n", nil)
	probs, err := engine.ValidateFaults(t.Context(), exp, ps)
	require.NoError(t, err)
	require.Len(t, probs, 1)
	require.Equal(t, "spec.faults[0].target", probs[0].Path)
	require.Equal(t, experiments.Pos{Line: 12, Col: 33}, probs[0].Pos)
	require.Contains(t, probs[0].Message, "node is a host target", "the plugin says which kinds of target its mode takes")
	require.Equal(t, 1, ps.opened, "one plugin, opened once for both faults")
	require.Equal(t, 1, ps.closed)
}

func TestValidateFaultsRedactsSecrets(t *testing.T) {
	const secret = "s3cr3t-not-a-duration"
	exp := validExperiment(t, "    - {plugin: latency, target: link, with: {delay: \"${env:DELAY}\"}, for: 3s}\n", map[string]string{"DELAY": secret})
	probs, err := engine.ValidateFaults(t.Context(), exp, &plugins{})
	require.NoError(t, err)
	require.Len(t, probs, 1)
	require.NotContains(t, probs[0].Message+probs[0].Hint, secret, "a plugin may echo a parameter; its value must not reach the output")
	require.Contains(t, probs[0].Message, experiments.Redacted)
}

func TestValidateFaultsOfAGoodFile(t *testing.T) {
	ps := &plugins{}
	probs, err := engine.ValidateFaults(t.Context(), validExperiment(t, "    - {plugin: latency, target: link, with: {delay: 20ms, jitter: 5ms}, for: 3s}\n", nil), ps)
	require.NoError(t, err)
	require.Empty(t, probs)
}

func TestValidateFaultsPluginThatWillNotStart(t *testing.T) {
	ps := &plugins{err: errors.New("exec: not found")}
	_, err := engine.ValidateFaults(t.Context(), validExperiment(t, "    - {plugin: latency, target: link, with: {delay: 1ms}, for: 3s}\n", nil), ps)
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "start plugin latency: "), err.Error())
}

// TestExamplesPassTheirPlugins: every example is accepted by the plugins its
// faults name, not only by Load.
func TestExamplesPassTheirPlugins(t *testing.T) {
	files, err := filepath.Glob("../experiments/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	env := func(string) (string, bool) { return "example-value", true }
	for _, f := range files {
		exp, err := experiments.Load(f, experiments.Options{Plugins: builtin.Names(), LookupEnv: env})
		require.NoError(t, err, f)
		if usesPlugin(exp, "podkill") {
			// podkill's Validate asks the API server whether the
			// credentials may delete the pods: that needs a cluster,
			// which e2e/podkill_test.go has.
			continue
		}
		probs, err := engine.ValidateFaults(t.Context(), exp, &plugins{})
		require.NoError(t, err, f)
		require.Empty(t, probs, "%s: the plugins must accept the example's faults", f)
	}
}

func usesPlugin(exp *experiments.Experiment, name string) bool {
	for _, f := range exp.Spec.Faults {
		if f.Plugin == name {
			return true
		}
	}
	return false
}
