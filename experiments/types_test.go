package experiments_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

func loadEverything(t *testing.T) *experiments.Experiment {
	t.Helper()
	exp, err := experiments.Load("testdata/good/everything.yaml", experiments.Options{LookupEnv: lookupSecret})
	require.NoError(t, err)
	return exp
}

func TestEveryKindDecodes(t *testing.T) {
	exp := loadEverything(t)
	kinds := map[string]string{}
	for name, tg := range exp.Spec.Targets {
		kinds[name] = tg.Kind()
	}
	require.Equal(t, map[string]string{
		"link": "endpoint", "pods": "kubernetes", "some_pods": "kubernetes", "all_pods": "kubernetes",
		"node": "host", "node2": "host", "by_pid": "process", "by_name": "process", "by_cgroup": "process",
	}, kinds, "`host:` with no value is a host target like `host: {}`")
	pods := exp.Spec.Targets["pods"].Kubernetes
	require.Equal(t, 2, pods.Pick.Count)
	require.Equal(t, experiments.Percent(25), exp.Spec.Targets["some_pods"].Kubernetes.Pick.Percent)
	require.True(t, exp.Spec.Targets["all_pods"].Kubernetes.Pick.All)

	probeKinds := map[string]string{}
	for name, p := range exp.Spec.Probes {
		probeKinds[name] = p.Kind()
		require.NotNil(t, p.FailedObservation("x"), "every kind has a failed observation")
		require.False(t, p.FailedObservation("x").Succeeded())
	}
	require.Equal(t, map[string]string{
		"checkout": "http", "db": "tcp", "errors": "prometheus", "errors2": "prometheus", "replicas": "kubernetes", "script": "exec",
	}, probeKinds)
	require.Equal(t, "POST", exp.Spec.Probes["checkout"].HTTP.Method, "methods are upper-cased")
	require.Equal(t, 2, exp.Spec.Probes["checkout"].Retries)
	require.Equal(t, experiments.ByteSize(64<<10), exp.Spec.Probes["script"].EffectiveMaxResponse(), "maxResponse: 64KiB")
	require.Equal(t, experiments.DefaultMaxResponse, exp.Spec.Probes["checkout"].EffectiveMaxResponse(), "the default cap is 1MiB")
	require.Equal(t, "shop", exp.Spec.Probes["replicas"].Kubernetes.Namespace())
	require.Equal(t, "checkout", exp.Spec.Probes["replicas"].Kubernetes.Name())

	eb := exp.Spec.Budget.ErrorBudget
	require.Equal(t, experiments.Percent(99.9), eb.SLO)
	require.Equal(t, experiments.LongDuration(30*24*time.Hour), eb.Window)
	require.InDelta(t, float64(51840*time.Millisecond), float64(eb.Allowance()), float64(time.Millisecond), "2% of the 43m12s a 99.9% SLO allows in 30 days")
	require.Equal(t, 15*time.Second, exp.Spec.Safety.EffectiveLeaseTTL())
	require.Equal(t, []string{"markdown", "html", "json", "junit"}, exp.Spec.Report.Formats)
}

func TestDefaults(t *testing.T) {
	exp, err := experiments.Load("testdata/good/minimal.yaml", experiments.Options{})
	require.NoError(t, err)
	require.Equal(t, experiments.DefaultLeaseTTL, exp.Spec.Safety.EffectiveLeaseTTL())
	require.Equal(t, experiments.DefaultReportFormats, exp.Spec.Report.Formats)
	exp, err = experiments.Load("testdata/good/kube-system-allowed.yaml", experiments.Options{})
	require.NoError(t, err)
	require.Equal(t, 1, exp.Spec.Targets["coredns"].Kubernetes.Pick.Count, "no pick means the smallest blast radius: one pod")
}

func TestProtectedNamespaces(t *testing.T) {
	var s experiments.Safety
	require.True(t, s.Protected("kube-system"), "kube-system is protected by default")
	require.False(t, s.Protected("shop"))
	s.AllowedNamespaces = []string{"kube-system"}
	require.False(t, s.Protected("kube-system"), "listing it as allowed is how a file says it means it")
	require.True(t, s.Protected("shop"), "with an allow-list, everything else is protected")
	s.ProtectedNamespaces = []string{"kube-system"}
	require.True(t, s.Protected("kube-system"), "protected wins")
}

// TestPositionsByPath: validation and the engine point at a field by its
// path; a path the file does not spell out falls back to its parent.
func TestPositionsByPath(t *testing.T) {
	exp := loadEverything(t)
	require.Equal(t, experiments.Pos{Line: 58, Col: 53}, exp.PosOf("spec.faults[0].with.delay"))
	require.Equal(t, experiments.Pos{Line: 58, Col: 46}, exp.KeyPosOf("spec.faults[0].with.delay"))
	require.Equal(t, experiments.Pos{Line: 58, Col: 7}, exp.PosOf("spec.faults[0]"))
	require.Equal(t, exp.PosOf("spec.faults[1]"), exp.PosOf("spec.faults[1].with.grace"), "a missing field points at its closest ancestor")
	require.True(t, exp.Has("spec.faults[0].with.jitter"))
	require.False(t, exp.Has("spec.faults[1].with"))
}
