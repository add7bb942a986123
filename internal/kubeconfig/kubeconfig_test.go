package kubeconfig_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/kubeconfig"
)

const twoContexts = `apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://a.invalid:6443"}}
- {name: b, cluster: {server: "https://b.invalid:6443"}}
users: [{name: u, user: {token: t}}]
contexts:
- {name: ctx-a, context: {cluster: a, user: u}}
- {name: ctx-b, context: {cluster: b, user: u}}
current-context: ctx-a
`

const other = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://flag.invalid:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx-flag, context: {cluster: c, user: u}}]
current-context: ctx-flag
`

// isolate leaves only what the test writes: no $KUBECONFIG, no
// ~/.kube/config, not in a pod.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	return dir
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// kubectl's order: the flag's file beats $KUBECONFIG (which beats
// ~/.kube/config: client-go reads that path once, at start, so it is not
// tested here); --context picks a context in whichever file that is.
func TestLoadFollowsKubectl(t *testing.T) {
	dir := isolate(t)
	flagFile := write(t, dir, "flag.kubeconfig", twoContexts)
	t.Setenv("KUBECONFIG", write(t, dir, "env.kubeconfig", twoContexts))

	cfg, err := kubeconfig.Source{}.Load()
	require.NoError(t, err)
	require.Equal(t, "https://a.invalid:6443", cfg.Host, "with no flags: $KUBECONFIG, its current context")

	cfg, err = kubeconfig.Source{Context: "ctx-b"}.Load()
	require.NoError(t, err)
	require.Equal(t, "https://b.invalid:6443", cfg.Host, "--context picks a context of $KUBECONFIG's file")

	write(t, dir, "flag.kubeconfig", other)
	cfg, err = kubeconfig.Source{Path: flagFile}.Load()
	require.NoError(t, err)
	require.Equal(t, "https://flag.invalid:6443", cfg.Host, "--kubeconfig beats $KUBECONFIG")

	_, err = kubeconfig.Source{Path: flagFile, Context: "ctx-b"}.Load()
	require.ErrorIs(t, err, kubeconfig.ErrBadConfig, "--context is looked up in --kubeconfig's file, which lacks it")
}

func TestLoadRefusesWhatWasAskedForAndCannotBeHad(t *testing.T) {
	dir := isolate(t)
	_, err := kubeconfig.Source{Path: filepath.Join(dir, "missing")}.Load()
	require.ErrorIs(t, err, kubeconfig.ErrBadConfig, "a missing --kubeconfig is a mistake, not a reason to use another cluster")
	require.ErrorIs(t, err, os.ErrNotExist)

	f := write(t, dir, "k", twoContexts)
	_, err = kubeconfig.Source{Path: f, Context: "prod"}.Load()
	require.ErrorIs(t, err, kubeconfig.ErrBadConfig, "an unknown context")
	require.Contains(t, err.Error(), `"prod"`, "the error names the context")

	_, err = kubeconfig.Source{Context: "prod"}.Load()
	require.ErrorIs(t, err, kubeconfig.ErrBadConfig, "a context with no kubeconfig at all is refused, not replaced by the in-cluster account")

	_, err = kubeconfig.Source{}.Load()
	require.ErrorIs(t, err, kubeconfig.ErrNoConfig, "nothing anywhere and not in a pod")
}

func TestPluginEnv(t *testing.T) {
	require.Empty(t, kubeconfig.Source{}.PluginEnv(), "no flags: the plugin inherits the runner's environment as it is")
	require.Equal(t, []string{"KUBECONFIG=/k", kubeconfig.EnvContext + "=prod"}, kubeconfig.Source{Path: "/k", Context: "prod"}.PluginEnv())
}
