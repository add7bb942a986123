package kubetest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/chaos-run/chaos/e2e/kube"
)

var cluster *kubetest.Cluster

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &cluster)) }

// Generous: the machine is shared; these bound a hang, they are not speeds.
const waitLimit = 2 * time.Minute

// A Deployment's pods on the kwok node become Ready; a gracefully deleted
// pod goes away and the ReplicaSet's replacement becomes Ready: the cluster
// behaves as podkill and the kubernetes probe will need it to.
func TestDeploymentReplacesDeletedPod(t *testing.T) {
	c := kubetest.Need(t, cluster)
	ctx := t.Context()
	cs := c.Client
	const ns, app = "replace-pod", "web"

	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err, "create namespace")
	waitFor(t, ctx, "default service account in "+ns, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})

	_, err = cs.AppsV1().Deployments(ns).Create(ctx, deployment(app, 3), metav1.CreateOptions{})
	require.NoError(t, err, "create deployment")
	before := waitReadyPods(t, ctx, cs, ns, app, 3, nil)

	var victim corev1.Pod
	for _, p := range before {
		victim = p
		break
	}
	require.Equal(t, kubetest.NodeName, victim.Spec.NodeName, "pods run on the kwok node")
	t.Logf("deleting pod %s (uid %s)", victim.Name, victim.UID)
	deleted := time.Now()
	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, victim.Name, metav1.DeleteOptions{}), "graceful delete")
	deleteReturned := time.Since(deleted)

	after := waitReadyPods(t, ctx, cs, ns, app, 3, before)
	replaced := time.Since(deleted)
	_, stillThere := after[victim.UID]
	require.False(t, stillThere, "deleted pod is not among the Ready pods")
	waitFor(t, ctx, "deleted pod gone", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, victim.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	t.Logf("cluster start %s; delete returned in %s; replacement Ready %s after delete",
		c.StartTime.Round(time.Millisecond), deleteReturned.Round(time.Millisecond), replaced.Round(time.Millisecond))

	// The Deployment's status follows its pods a moment later (the
	// deployment controller writes it after the ReplicaSet's).
	waitFor(t, ctx, "deployment is 3/3 Ready again", func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, app, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 3, err
	})
}

func deployment(app string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": app}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// No scheduler in the test cluster: name the kwok node.
					NodeName:   kubetest.NodeName,
					Containers: []corev1.Container{{Name: app, Image: "example.invalid/web:1"}},
				},
			},
		},
	}
}

// waitReadyPods waits until n pods of the app are Ready (running, not
// terminating), none of them in exclude, and returns them by uid.
func waitReadyPods(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, app string, n int, exclude map[types.UID]corev1.Pod) map[types.UID]corev1.Pod {
	t.Helper()
	var ready map[types.UID]corev1.Pod
	waitFor(t, ctx, "pods Ready", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, nil
		}
		ready = map[types.UID]corev1.Pod{}
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && kubetest.PodReady(&p) {
				ready[p.UID] = p
			}
		}
		fresh := 0
		for uid := range ready {
			if _, old := exclude[uid]; !old {
				fresh++
			}
		}
		return len(ready) == n && (exclude == nil || fresh > 0), nil
	})
	return ready
}

func waitFor(t *testing.T, ctx context.Context, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, waitLimit, true, cond)
	require.NoError(t, err, "wait for %s (limit %s)", what, waitLimit)
}
