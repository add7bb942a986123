package experiments_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

// A pods probe observes no workload: its workload counts are missing, never
// a zero an expression could hold on, and the record leaves them out.
func TestKubernetesPodsObservationHasNoWorkloadCounts(t *testing.T) {
	pods := experiments.KubernetesObservation{OK: true, Kind: experiments.KubernetesPodsKind, Pods: 3, PodsReady: 2}
	for _, f := range []string{"desired", "ready", "available", "updated"} {
		why, missing := experiments.FieldMissing(pods, f)
		require.True(t, missing, "%s of a pods probe", f)
		require.Contains(t, why, "no workload")
		require.NotContains(t, pods.Values(), f, "the record has no %s for a pods probe", f)
	}
	_, missing := experiments.FieldMissing(pods, "podsReady")
	require.False(t, missing, "pod counts are observed")

	sts := experiments.KubernetesObservation{OK: true, Kind: experiments.KubernetesStatefulSet, Desired: 2, Ready: 2}
	_, missing = experiments.FieldMissing(sts, "desired")
	require.False(t, missing, "a StatefulSet has its counts")
	require.Equal(t, 2, sts.Values()["desired"])
}

func TestKubernetesProbeKindsAndDefaults(t *testing.T) {
	for _, c := range []struct {
		yaml, kind, describe string
	}{
		{"{deployment: shop/web}", "deployment", "deployment shop/web"},
		{"{statefulSet: shop/db}", "statefulSet", "statefulSet shop/db"},
		{"{daemonSet: shop/agent}", "daemonSet", "daemonSet shop/agent"},
		{"{pods: {namespace: shop, selector: app=web, fieldSelector: status.phase=Running}}", "pods", "pods in shop matching app=web and status.phase=Running"},
	} {
		exp, err := experiments.Parse("shop.yaml", []byte(kubeProbeFile(c.yaml)), experiments.Options{Plugins: []string{"latency"}})
		require.NoError(t, err, c.yaml)
		k := exp.Spec.Probes["shop"].Kubernetes
		require.Equal(t, c.kind, k.Kind())
		require.Equal(t, c.describe, k.Describe())
		require.Equal(t, "shop", k.Namespace())
		require.Equal(t, 5*time.Minute, k.RestartWindow, "restartWindow defaults to 5m")
	}
}

func kubeProbeFile(probe string) string {
	return `apiVersion: chaos/v1
kind: Experiment
metadata:
  name: shop
  owner: {team: shop}
spec:
  hypothesis: The shop keeps its pods.
  targets:
    upstream:
      endpoint: {listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}
  probes:
    shop:
      kubernetes: ` + probe + `
  steadyState:
    - shop.podsReady >= 1
  faults:
    - {plugin: latency, target: upstream, with: {delay: 100ms}, for: 30s}
  safety: {maxDuration: 5m}
`
}
