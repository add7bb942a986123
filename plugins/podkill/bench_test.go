package podkill_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
	"github.com/chaos-run/chaos/plugins/podkill"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// Benchmark sizes (issue 11): kill 100 of 1,000 pods.
const (
	benchGroups   = 10  // Deployments, labelled group=g0..g9
	benchPerGroup = 100 // replicas each
	benchPods     = benchGroups * benchPerGroup
	benchKill     = 100
	benchGoal     = 500 * time.Millisecond
)

// TestPodkillBench100of1000 measures, in one run against the real test
// cluster, deleting 100 of 1,000 Ready pods three ways: podkill's Inject
// (list, pick 100 of the 1,000, delete with uid preconditions, tuned client
// limits), `kubectl delete pods -l` of one 100-pod Deployment (kubectl's
// defaults, so it waits for the pods to be gone) and client-go at its
// default limits (QPS 5, burst 10) deleting the same kind of 100 pods one
// by one; kubectl is also timed with --wait=false, which returns once the
// deletions are accepted, as podkill's inject does. Between rounds the 1,000 pods are Ready again. Gated by
// CHAOS_PODKILL_BENCH=1; the goal is podkill <= 0.5 s.
func TestPodkillBench100of1000(t *testing.T) {
	if os.Getenv("CHAOS_PODKILL_BENCH") != "1" {
		t.Skip("set CHAOS_PODKILL_BENCH=1 to run the podkill benchmark (100 of 1,000 pods)")
	}
	c := kubetest.Need(t, cluster)
	kubectl, err := exec.LookPath("kubectl")
	require.NoError(t, err, "the benchmark compares with kubectl, which must be on PATH")
	const ns = "bench"
	makeNamespace(t, c, ns)
	for g := range benchGroups {
		n := int32(benchPerGroup)
		labels := map[string]string{"app": "bench", "group": fmt.Sprintf("g%d", g)}
		_, err := c.Client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-g%d", g)},
			Spec: appsv1.DeploymentSpec{
				Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{NodeName: kubetest.NodeName, Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}}},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err, "create deployment g%d", g)
	}
	setup := time.Now()
	waitBench(t, c, ns)
	t.Logf("%d pods Ready in %s", benchPods, time.Since(setup).Round(time.Millisecond))

	// podkill: what a run's inject does, in process.
	req := sdk.Request{
		RunID:  "bench",
		Target: sdk.Target{Name: "bench", Kind: sdk.KindKubernetes, Kubernetes: &sdk.KubernetesTarget{Namespace: ns, Selector: "app=bench", Pick: sdk.Pick{Count: benchKill}}},
		Params: params(""),
	}
	f := podkill.New()
	start := time.Now()
	h, err := f.Inject(t.Context(), req)
	tPodkill := time.Since(start)
	require.NoError(t, err, "podkill inject")
	st, err := f.Status(t.Context(), h)
	require.NoError(t, err)
	require.Equal(t, benchKill, countKilled(st.Detail), "podkill killed %d pods", benchKill)
	waitBench(t, c, ns)

	// kubectl delete -l, its defaults (it waits until the pods are gone).
	start = time.Now()
	out, err := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", c.Kubeconfig, "-n", ns, "delete", "pods", "-l", "group=g0").CombinedOutput()
	tKubectl := time.Since(start)
	require.NoError(t, err, "kubectl delete: %s", out)
	waitBench(t, c, ns)

	// kubectl delete -l --wait=false: returns once the API server accepted
	// the deletions, as podkill's inject does.
	start = time.Now()
	out, err = exec.CommandContext(t.Context(), kubectl, "--kubeconfig", c.Kubeconfig, "-n", ns, "delete", "pods", "-l", "group=g2", "--wait=false").CombinedOutput()
	tKubectlNoWait := time.Since(start)
	require.NoError(t, err, "kubectl delete --wait=false: %s", out)
	waitBench(t, c, ns)

	// client-go at its default limits: a config with QPS and Burst unset.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	require.NoError(t, err)
	plain, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	start = time.Now()
	pods, err := plain.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "group=g1"})
	require.NoError(t, err)
	require.Len(t, pods.Items, benchPerGroup, "group g1 has its 100 pods")
	for _, p := range pods.Items {
		require.NoError(t, plain.CoreV1().Pods(ns).Delete(t.Context(), p.Name, metav1.DeleteOptions{}), "delete %s", p.Name)
	}
	tClientGo := time.Since(start)
	waitBench(t, c, ns)

	ratio := func(d time.Duration) float64 { return float64(d) / float64(tPodkill) }
	line := fmt.Sprintf("podkill-100-of-1000: podkill %s (goal <= %s); kubectl delete -l %s (%.1fx podkill), with --wait=false %s (%.1fx); client-go defaults %s (%.1fx)",
		tPodkill.Round(time.Millisecond), benchGoal, tKubectl.Round(time.Millisecond), ratio(tKubectl),
		tKubectlNoWait.Round(time.Millisecond), ratio(tKubectlNoWait), tClientGo.Round(time.Millisecond), ratio(tClientGo))
	fmt.Println(line)
	t.Log(line)
}

// countKilled counts the pods a podkill Status detail names as killed.
func countKilled(detail string) int {
	n := 0
	for i := 0; i+len(") killed at ") <= len(detail); i++ {
		if detail[i:i+len(") killed at ")] == ") killed at " {
			n++
		}
	}
	return n
}

// waitBench waits until all 1,000 pods are Ready and none is terminating.
func waitBench(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
		if err != nil {
			return false, nil
		}
		ready, terminating := count(pods.Items)
		return ready == benchPods && terminating == 0, nil
	})
	require.NoError(t, err, "waiting for %d Ready pods in %s, none terminating", benchPods, ns)
}
