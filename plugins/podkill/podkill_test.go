package podkill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
	"github.com/chaos-run/chaos/plugins/podkill"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

var cluster *kubetest.Cluster

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &cluster)) }

const waitLimit = 2 * time.Minute

// TestConformance runs the SDK's conformance suite against the real test
// cluster. What "in effect" means for a kill: a pod the fault killed is
// gone (Check(true), see there); "not in effect": the Deployment is back to all its
// replicas Ready, none terminating (Check(false) waits for it, bounded, as
// the revert itself does). The two "restarted plugin" cases are left out
// (Fresh is nil): a kill holds nothing a fresh process could undo, so a
// fresh process's RevertByID rightly answers false, where the suite expects
// a plugin with that ability to find the fault; TestFreshProcessHoldsNothing
// checks that answer instead.
func TestConformance(t *testing.T) {
	c := kubetest.Need(t, cluster)
	const ns = "conformance"
	makeShop(t, c, ns, 3)
	whole := map[types.UID]bool{}
	for _, p := range listPods(t, c, ns) {
		whole[p.UID] = true
	}
	sdktest.Run(t, podkill.New(), sdktest.Case{
		Request: func(t *testing.T) sdk.Request { return request(ns, "{count: 1}", t.Name()) },
		Invalid: map[string]sdk.Request{
			"kube-system":             request("kube-system", "{count: 1}", "x"),
			"no pods match":           withSelector(request(ns, "{count: 1}", "x"), "app=nothing"),
			"force and grace":         withParams(request(ns, "{count: 1}", "x"), `"force": true, "gracePeriod": "5s"`),
			"unknown parameter":       withParams(request(ns, "{count: 1}", "x"), `"forse": true`),
			"not a kubernetes target": {Target: sdk.Target{Name: "h", Kind: sdk.KindHost, Host: &sdk.HostTarget{}}},
		},
		// Check looks at the cluster only. kwok replaces a killed pod at
		// once, so "a pod was killed" is "a pod seen when the Deployment was
		// last whole is gone or terminating", not "fewer are Ready".
		Check: func(t *testing.T, active bool) {
			if active {
				now := map[types.UID]bool{}
				for _, p := range listPods(t, c, ns) {
					if p.DeletionTimestamp == nil {
						now[p.UID] = true
					}
				}
				gone := 0
				for uid := range whole {
					if !now[uid] {
						gone++
					}
				}
				require.Positive(t, gone, "a pod of the whole Deployment was killed")
				return
			}
			waitRecovered(t, c, ns, 3)
			whole = map[types.UID]bool{}
			for _, p := range listPods(t, c, ns) {
				whole[p.UID] = true
			}
		},
	})
}

func TestFreshProcessHoldsNothing(t *testing.T) {
	c := kubetest.Need(t, cluster)
	const ns = "fresh"
	makeShop(t, c, ns, 3)
	first := sdktest.Connect(t, podkill.New())
	req := request(ns, "{count: 1}", "run1")
	req.ID = "run1/fault"
	h, err := first.Inject(t.Context(), req)
	require.NoError(t, err)
	require.Contains(t, h, "a kill is not revertible", "the handle (in the ledger) says so")
	fresh := sdktest.Connect(t, podkill.New())
	was, err := fresh.RevertBy(t.Context(), "", req.ID)
	require.NoError(t, err, "nothing to undo is not an error")
	require.False(t, was, "a fresh process holds nothing for a kill")
	was, err = first.Revert(t.Context(), h)
	require.NoError(t, err)
	require.True(t, was)
	st, err := first.Status(t.Context(), h)
	require.NoError(t, err)
	require.Contains(t, st.Detail, "Ready at", "the status names when the replacement became Ready: %s", st.Detail)
	waitRecovered(t, c, ns, 3)
}

func TestUnownedPodRefused(t *testing.T) {
	c := kubetest.Need(t, cluster)
	const ns = "unowned"
	makeNamespace(t, c, ns)
	_, err := c.Client.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "lonely", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: kubetest.NodeName, Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitRecovered(t, c, ns, 1)
	f := podkill.New()
	probs := f.Validate(t.Context(), request(ns, "{count: 1}", "x"))
	require.NotEmpty(t, probs, "a pod no controller owns is refused")
	require.Contains(t, probs[0].Message, ns+"/lonely", "naming the pod")
	_, err = f.Inject(t.Context(), request(ns, "{count: 1}", "x"))
	require.ErrorIs(t, err, podkill.ErrUnowned)
	require.Len(t, listPods(t, c, ns), 1, "nothing was killed")
	require.Empty(t, f.Validate(t.Context(), withParams(request(ns, "{count: 1}", "x"), `"allowUnowned": true`)), "unless allowUnowned")
}

func request(ns, pick, runID string) sdk.Request {
	var p sdk.Pick
	if err := json.Unmarshal([]byte(jsonPick(pick)), &p); err != nil {
		panic(err)
	}
	return sdk.Request{
		RunID:  runID,
		Target: sdk.Target{Name: "web", Kind: sdk.KindKubernetes, Kubernetes: &sdk.KubernetesTarget{Namespace: ns, Selector: "app=web", Pick: p}},
		Params: params(`"recoveryTimeout": "60s"`),
	}
}

func jsonPick(s string) string {
	switch s {
	case "{count: 1}":
		return `{"count": 1}`
	case "{count: 2}":
		return `{"count": 2}`
	}
	return `{"all": true}`
}

func withSelector(r sdk.Request, sel string) sdk.Request {
	k := *r.Target.Kubernetes
	k.Selector = sel
	r.Target.Kubernetes = &k
	return r
}

// withParams replaces the parameters; the kubeconfig parameter is always
// the test cluster's (the plugin also reads $KUBECONFIG; this tests the
// parameter).
func withParams(r sdk.Request, p string) sdk.Request { r.Params = params(p); return r }

func params(fields string) json.RawMessage {
	kc, _ := json.Marshal(cluster.Kubeconfig)
	if fields == "" {
		return json.RawMessage(`{"kubeconfig": ` + string(kc) + `}`)
	}
	return json.RawMessage(`{"kubeconfig": ` + string(kc) + `, ` + fields + `}`)
}

func makeNamespace(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err)
	poll(t, "service account", func(ctx context.Context) bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

func makeShop(t *testing.T, c *kubetest.Cluster, ns string, n int32) {
	t.Helper()
	makeNamespace(t, c, ns)
	labels := map[string]string{"app": "web"}
	_, err := c.Client.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &n, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{NodeName: kubetest.NodeName, Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitRecovered(t, c, ns, int(n))
}

func listPods(t *testing.T, c *kubetest.Cluster, ns string) []corev1.Pod {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	return pods.Items
}

func count(pods []corev1.Pod) (ready, terminating int) {
	for _, p := range pods {
		switch {
		case p.DeletionTimestamp != nil:
			terminating++
		case kubetest.PodReady(&p):
			ready++
		}
	}
	return ready, terminating
}

// waitRecovered waits until n pods are Ready and none is terminating.
func waitRecovered(t *testing.T, c *kubetest.Cluster, ns string, n int) {
	t.Helper()
	poll(t, fmt.Sprintf("%d Ready pods in %s, none terminating", n, ns), func(ctx context.Context) bool {
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false
		}
		ready, terminating := count(pods.Items)
		return ready == n && terminating == 0 && len(pods.Items) == n
	})
}

func poll(t *testing.T, what string, ok func(ctx context.Context) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, waitLimit, true, func(ctx context.Context) (bool, error) { return ok(ctx), nil })
	require.NoError(t, err, "waiting for %s", what)
}

// TestInjectKillsWhatResolveNamed: through the plugin protocol (whose
// resolve call carries no run id) the pod Inject kills is the one Resolve
// named, so the report and the locks name the pod that died; the Status
// detail after the revert names it, by uid, with its replacement.
func TestInjectKillsWhatResolveNamed(t *testing.T) {
	c := kubetest.Need(t, cluster)
	const ns = "resolve-inject"
	makeShop(t, c, ns, 5)
	client := sdktest.Connect(t, podkill.New())
	req := request(ns, "{count: 1}", "run-resolve-inject")
	res, err := client.Resolve(t.Context(), req)
	require.NoError(t, err, "resolve")
	require.Len(t, res.Things, 1, "one pod picked of five")
	uid := strings.TrimPrefix(res.Things[0].Key, "pod:")
	h, err := client.Inject(t.Context(), req)
	require.NoError(t, err, "inject")
	gone := true
	for _, p := range listPods(t, c, ns) {
		if string(p.UID) == uid && p.DeletionTimestamp == nil {
			gone = false
		}
	}
	require.True(t, gone, "the pod resolve named (uid %s) is the one killed", uid)
	was, err := client.Revert(t.Context(), h)
	require.NoError(t, err, "revert")
	require.True(t, was, "the kill was in effect")
	st, err := client.Status(t.Context(), h)
	require.NoError(t, err, "status after revert")
	require.Contains(t, st.Detail, "uid "+uid, "the detail names the killed pod")
	require.Contains(t, st.Detail, "Ready at", "and when its replacement was Ready: %s", st.Detail)
	waitRecovered(t, c, ns, 5)
}
