package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/kubeconfig"
	"github.com/chaos-run/chaos/probes"
	"github.com/chaos-run/chaos/reports"
)

// TestKubeProbe runs the kubernetes probe against the real test cluster
// (kube-apiserver, etcd, kube-controller-manager with the statefulset and
// daemonset controllers, kwok as the node and its kubelet): StatefulSet and
// DaemonSet readiness and pod counts through the real chaos binary reached
// with --kubeconfig and --context, a context the kubeconfig lacks refused
// before anything is killed, and pod phases and restarts observed by the
// probe itself.
func TestKubeProbe(t *testing.T) {
	c := startCluster(t)
	t.Logf("cluster %s ready in %s", c.Server, c.StartTime.Round(time.Millisecond))
	// Nothing but the flags may lead chaos to the cluster: no KUBECONFIG,
	// no ~/.kube/config, not in a pod.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBECONFIG", filepath.Join(home, "none"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")

	const ns = "kp-shop"
	statefulShop(t, c, ns)
	kcfg := twoContextKubeconfig(t, c)

	t.Run("statefulset and daemonset through --kubeconfig --context", func(t *testing.T) { kubeProbeRun(t, c, ns, kcfg) })
	t.Run("unknown context, nothing killed", func(t *testing.T) { kubeProbeUnknownContext(t, c, ns, kcfg) })
	t.Run("a restart trips the budget", func(t *testing.T) { kubeProbeRestartBudget(t, c, ns) })
	t.Run("pod phases and restarts", func(t *testing.T) { kubeProbePhasesAndRestarts(t, c) })
}

// statefulShop creates namespace ns with a StatefulSet "db" of 2 replicas
// and a DaemonSet "agent", both on the kwok node, and waits until their
// controllers say they are ready. The pod templates name the kwok node
// (spec.nodeName): the test cluster has no scheduler, and the DaemonSet
// controller keeps a template's nodeName (the node must then match it).
func statefulShop(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	ctx := t.Context()
	newNamespace(t, c, ns)
	template := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{
				NodeName:   kubetest.NodeName,
				Containers: []corev1.Container{{Name: app, Image: "example.invalid/" + app + ":1"}},
			},
		}
	}
	two := int32(2)
	_, err := c.Client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			// As for the podkill tests' Deployment: kwok makes a
			// replacement Ready at once, and minReadySeconds keeps it
			// unavailable for a while, as a real pod starting would be.
			Replicas: &two, ServiceName: "db", MinReadySeconds: 2,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: template("db"),
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "create statefulset")
	// The API server taints a new node not-ready:NoSchedule, and only the
	// node lifecycle controller, which the test cluster does not run, takes
	// the taint off; daemon pods tolerate not-ready only for NoExecute.
	agent := template("agent")
	agent.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	_, err = c.Client.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: agent,
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "create daemonset")
	var seen string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen of %s: %s", ns, seen)
		}
	})
	pollUntil(t, "statefulset db 2/2 ready and daemonset agent 1/1 ready", func(ctx context.Context) bool {
		s, err := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		d, derr := c.Client.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		if err != nil || derr != nil {
			seen = fmt.Sprintf("statefulset: %v; daemonset: %v", err, derr)
			return false
		}
		pods, _ := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		node, _ := c.Client.CoreV1().Nodes().Get(ctx, kubetest.NodeName, metav1.GetOptions{})
		seen = fmt.Sprintf("statefulset status %+v; daemonset status %+v; node taints %v; pods:", s.Status, d.Status, node.Spec.Taints)
		for _, p := range pods.Items {
			seen += fmt.Sprintf(" %s(%s, node %q)", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
		return s.Status.ReadyReplicas == 2 && s.Status.AvailableReplicas == 2 &&
			d.Status.DesiredNumberScheduled == 1 && d.Status.NumberReady == 1 && d.Status.NumberAvailable == 1
	})
}

// twoContextKubeconfig writes a kubeconfig whose current context points at
// nothing (127.0.0.1:1) and whose context "test" is the test cluster: a run
// that reaches the cluster can only have used --context.
func twoContextKubeconfig(t *testing.T, c *kubetest.Cluster) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	require.NoError(t, err)
	cur := admin.Contexts[admin.CurrentContext]
	require.NotNil(t, cur, "the admin kubeconfig has a current context")
	cfg := admin.DeepCopy()
	cfg.Clusters["nowhere"] = cfg.Clusters[cur.Cluster].DeepCopy()
	cfg.Clusters["nowhere"].Server = "https://127.0.0.1:1"
	cfg.Contexts = map[string]*clientcmdapi.Context{
		"test":    {Cluster: cur.Cluster, AuthInfo: cur.AuthInfo},
		"nowhere": {Cluster: "nowhere", AuthInfo: cur.AuthInfo},
	}
	cfg.CurrentContext = "nowhere"
	path := filepath.Join(t.TempDir(), "two-contexts.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}

func kubeProbeFile(t *testing.T, ns string) string {
	t.Helper()
	body := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: db-survives-a-pod-kill
  owner: {team: shop}
spec:
  hypothesis: The db StatefulSet gets its pod back, and the agent DaemonSet stays ready.
  targets:
    db:
      kubernetes: {namespace: %[1]s, selector: app=db, pick: {count: 1}}
  probes:
    db:
      kubernetes: {statefulSet: %[1]s/db}
      every: 100ms
      timeout: 2s
    agent:
      kubernetes: {daemonSet: %[1]s/agent}
      every: 100ms
      timeout: 2s
    dbpods:
      kubernetes: {pods: {namespace: %[1]s, selector: app=db, fieldSelector: spec.nodeName=%[2]s}}
      every: 100ms
      timeout: 2s
  steadyState:
    - db.desired == 2 && db.ready >= 1 && db.pods >= 1
    - agent.desired == 1 && agent.ready == 1 && agent.available == 1 && agent.podsRunning == 1 && agent.restarts == 0
    - dbpods.pods >= 1
  faults:
    - {plugin: podkill, target: db, with: {recoveryTimeout: 60s}, after: 500ms, for: 3s}
  budget:
    abortWhen:
      - agent.podsFailed > 0
  safety: {maxDuration: 3m}
`, ns, kubetest.NodeName)
	path := filepath.Join(t.TempDir(), "kubeprobe.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

func kubeProbeRun(t *testing.T, c *kubetest.Cluster, ns, kcfg string) {
	before := podsOf(t, c, ns, "app=db")
	stateDir, reportDir := t.TempDir(), t.TempDir()
	p := start(t, built.chaos, "run", "--kubeconfig", kcfg, "--context", "test", "--state-dir", stateDir, "--report-dir", reportDir, kubeProbeFile(t, ns))
	code := p.exitCode(t)
	t.Logf("chaos run exited %d\nstdout:\n%s\nstderr:\n%s", code, p.stdout, tail([]byte(p.stderr.String())))
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Passed, rec.Verdict, "the probe and podkill reached the cluster through --context test (the current context points at nothing): passed (reason: %s)", rec.Reason)
	require.Equal(t, reports.Passed.ExitCode(), code)

	after := podsOf(t, c, ns, "app=db")
	killed := 0
	for uid := range before {
		if !after[uid] {
			killed++
		}
	}
	require.Equal(t, 1, killed, "podkill killed one db pod through the same flags")

	db := events(rec, reports.EventProbe, "db")
	require.NotEmpty(t, db)
	var sawFewer bool
	for _, e := range db {
		require.True(t, e.OK, "every db observation was made: %v", e.Values)
		require.Equal(t, experiments.KubernetesStatefulSet, e.Values["kind"])
		if a, _ := e.Values["available"].(float64); a < 2 {
			sawFewer = true
		}
	}
	require.True(t, sawFewer, "the probe saw the StatefulSet lose an available pod")
	last := db[len(db)-1].Values
	require.Equal(t, map[string]any{"desired": 2.0, "ready": 2.0, "updated": 2.0, "pods": 2.0, "podsRunning": 2.0, "podsReady": 2.0, "podsTerminating": 0.0},
		pick(last, "desired", "ready", "updated", "pods", "podsRunning", "podsReady", "podsTerminating"),
		"after the revert (which waits for the replacement to be Ready) the StatefulSet is 2/2 ready again, as its status and its pods say")

	agent := events(rec, reports.EventProbe, "agent")
	require.NotEmpty(t, agent)
	require.Equal(t, map[string]any{"kind": "daemonSet", "desired": 1.0, "ready": 1.0, "available": 1.0, "updated": 1.0, "pods": 1.0, "podsRunning": 1.0, "restarts": 0.0},
		pick(agent[len(agent)-1].Values, "kind", "desired", "ready", "available", "updated", "pods", "podsRunning", "restarts"),
		"the DaemonSet's scheduled/ready/available/updated counts and its one pod on the kwok node")

	dbpods := events(rec, reports.EventProbe, "dbpods")
	require.NotEmpty(t, dbpods)
	lastPods := dbpods[len(dbpods)-1].Values
	require.Equal(t, "pods", lastPods["kind"])
	require.Equal(t, 2.0, lastPods["podsRunning"], "the pods probe counts the db pods on the kwok node")
	require.NotContains(t, lastPods, "ready", "a pods probe has no workload counts in the record")
}

// pick is the subset of m with these keys.
func pick(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	return out
}

func kubeProbeUnknownContext(t *testing.T, c *kubetest.Cluster, ns, kcfg string) {
	before := podsOf(t, c, ns, "app=db")
	stateDir, reportDir := t.TempDir(), t.TempDir()
	p := start(t, built.chaos, "run", "--kubeconfig", kcfg, "--context", "prod", "--state-dir", stateDir, "--report-dir", reportDir, kubeProbeFile(t, ns))
	code := p.exitCode(t)
	t.Logf("chaos run exited %d\nstderr:\n%s", code, p.stderr)
	require.Equal(t, reports.Invalid.ExitCode(), code, "a context the kubeconfig lacks is bad input")
	require.Regexp(t, `^chaos: --kubeconfig \S+ --context prod: unusable kubernetes configuration: .*context "prod".*; nothing was run\n$`, p.stderr.String(),
		"one error naming the flags and the missing context")
	_, err := os.Stat(filepath.Join(reportDir, reports.JSONFile))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing ran, so there is no report")
	require.Equal(t, before, podsOf(t, c, ns, "app=db"), "nothing was killed")
}

// podsOf are the uids of the pods matching selector in ns.
func podsOf(t *testing.T, c *kubetest.Cluster, ns, selector string) map[types.UID]bool {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	require.NoError(t, err)
	out := map[types.UID]bool{}
	for _, p := range pods.Items {
		out[p.UID] = true
	}
	return out
}

// kubeProbePhasesAndRestarts drives pods into each phase and restarts a
// container, then reads them with the kubernetes probe itself (in this
// process, through the real API). kwok stands in for the kubelet: it makes
// pods on its node Running; the test writes the other phases and the
// restart into the pods' status subresource, as a kubelet would report
// them (kwok leaves a Running pod's status alone afterwards).
func kubeProbePhasesAndRestarts(t *testing.T, c *kubetest.Cluster) {
	const ns = "kp-phases"
	ctx := t.Context()
	newNamespace(t, c, ns)
	pod := func(name, node string) {
		_, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "jobs"}},
			Spec: corev1.PodSpec{
				NodeName: node, RestartPolicy: corev1.RestartPolicyAlways,
				Containers: []corev1.Container{{Name: "work", Image: "example.invalid/work:1"}},
			},
		}, metav1.CreateOptions{})
		require.NoError(t, err, "create pod %s", name)
	}
	// Running (kwok), Pending (a node nothing runs), and two that will be
	// set Succeeded and Failed once kwok has made them Running.
	for _, n := range []string{"run", "ok", "bad"} {
		pod(n, kubetest.NodeName)
	}
	pod("stuck", "no-such-node")
	pollUntil(t, "kwok runs the pods on its node", func(ctx context.Context) bool {
		for _, n := range []string{"run", "ok", "bad"} {
			p, err := c.Client.CoreV1().Pods(ns).Get(ctx, n, metav1.GetOptions{})
			if err != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
				return false
			}
		}
		return true
	})
	setStatus := func(name string, change func(*corev1.PodStatus)) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		change(&p.Status)
		_, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		require.NoError(t, err, "update the status of pod %s as its kubelet would", name)
	}
	// A pod that ended is no longer Ready, as its kubelet would say.
	ended := func(phase corev1.PodPhase) func(*corev1.PodStatus) {
		return func(s *corev1.PodStatus) {
			s.Phase = phase
			for i := range s.Conditions {
				if s.Conditions[i].Type == corev1.PodReady || s.Conditions[i].Type == corev1.ContainersReady {
					s.Conditions[i].Status = corev1.ConditionFalse
				}
			}
		}
	}
	setStatus("ok", ended(corev1.PodSucceeded))
	setStatus("bad", ended(corev1.PodFailed))

	spec := &experiments.Probe{Kubernetes: &experiments.KubernetesProbe{
		Pods:          &experiments.KubernetesPods{Namespace: ns, Selector: "app=jobs"},
		RestartWindow: time.Minute,
	}}
	pr, err := probes.KubernetesProber(kubeconfig.Source{Path: c.Kubeconfig})(spec)
	require.NoError(t, err, "the probe is built from an explicit kubeconfig, as --kubeconfig gives it")
	observe := func() experiments.KubernetesObservation {
		t.Helper()
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		o, ok := pr.Probe(octx).(experiments.KubernetesObservation)
		require.True(t, ok)
		require.True(t, o.OK, "observed: %s", o.Error)
		return o
	}
	o := observe()
	require.Equal(t, experiments.KubernetesObservation{
		OK: true, Kind: "pods", Pods: 4, PodsRunning: 1, PodsPending: 1, PodsSucceeded: 1, PodsFailed: 1, PodsReady: 1,
	}, o, "one pod in each phase, only the Running one Ready; the first observation: no container ever restarted")

	// The kubelet restarts the container: restartCount goes up and the
	// last run's end is recorded.
	setStatus("run", func(s *corev1.PodStatus) {
		cs := &s.ContainerStatuses[0]
		cs.RestartCount++
		cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 137, Reason: "OOMKilled", FinishedAt: metav1.Now(),
		}}
	})
	require.Equal(t, 1, observe().Restarts, "the restart seen between two observations counts")
	require.Equal(t, 1, observe().Restarts, "and keeps counting while it is within the window")

	// A probe started now sees the restart only through its time: the last
	// run ended within its window, so it counts once.
	fresh, err := probes.KubernetesProber(kubeconfig.Source{Path: c.Kubeconfig})(spec)
	require.NoError(t, err)
	o2 := fresh.Probe(ctx).(experiments.KubernetesObservation)
	require.True(t, o2.OK, o2.Error)
	require.Equal(t, 1, o2.Restarts, "a new probe counts a restart whose last finish is within the window")

	// More pods than one page of the list (500): the probe reads every
	// page. They name a node nothing runs, so they stay Pending.
	const bulk = 520
	for i := range bulk {
		_, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bulk-%d", i), Labels: map[string]string{"app": "bulk"}},
			Spec:       corev1.PodSpec{NodeName: "no-such-node", Containers: []corev1.Container{{Name: "work", Image: "example.invalid/work:1"}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	many, err := probes.KubernetesProber(kubeconfig.Source{Path: c.Kubeconfig})(&experiments.Probe{Kubernetes: &experiments.KubernetesProbe{
		Pods: &experiments.KubernetesPods{Namespace: ns, Selector: "app=bulk", FieldSelector: "status.phase=Pending"},
	}})
	require.NoError(t, err)
	om := many.Probe(ctx).(experiments.KubernetesObservation)
	require.True(t, om.OK, om.Error)
	require.Equal(t, bulk, om.Pods, "every page of the list is counted")
	require.Equal(t, bulk, om.PodsPending)

	// A workload that is not there is an observation that could not be
	// made, saying so; never zero counts an expression could hold on.
	missing, err := probes.KubernetesProber(kubeconfig.Source{Path: c.Kubeconfig})(&experiments.Probe{Kubernetes: &experiments.KubernetesProbe{StatefulSet: ns + "/nope"}})
	require.NoError(t, err)
	o3 := missing.Probe(ctx).(experiments.KubernetesObservation)
	require.False(t, o3.OK)
	require.Equal(t, "statefulSet "+ns+"/nope not found", o3.Error)
}

// kubeProbeRestartBudget runs an experiment whose budget aborts on a
// restart of the DaemonSet's container, through the real binary with
// --kubeconfig alone (the admin kubeconfig's current context). While the
// fault is live the test restarts the container the way a kubelet reports
// it (restartCount up in the pod's status); the probe sees it and the run
// aborts.
func kubeProbeRestartBudget(t *testing.T, c *kubetest.Cluster, ns string) {
	body := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: agent-never-restarts
  owner: {team: shop}
spec:
  hypothesis: The agent does not restart while a db pod is killed.
  targets:
    db:
      kubernetes: {namespace: %[1]s, selector: app=db, pick: {count: 1}}
  probes:
    agent:
      kubernetes: {daemonSet: %[1]s/agent, restartWindow: 10m}
      every: 100ms
      timeout: 2s
  steadyState:
    - agent.ready == agent.desired
  faults:
    - {plugin: podkill, target: db, with: {recoveryTimeout: 60s}, after: 200ms, for: 90s}
  budget:
    abortWhen:
      - agent.restarts > 0
  safety: {maxDuration: 3m}
`, ns)
	file := filepath.Join(t.TempDir(), "restarts.yaml")
	require.NoError(t, os.WriteFile(file, []byte(body), 0o644))
	reportDir := t.TempDir()
	p := start(t, built.chaos, "run", "--kubeconfig", c.Kubeconfig, "--state-dir", t.TempDir(), "--report-dir", reportDir, file)
	p.waitLine(t, p.stderr, "podkill on db injected")

	pods, err := c.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=agent"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1, "the DaemonSet has one pod, on the kwok node")
	agent := pods.Items[0]
	require.Len(t, agent.Status.ContainerStatuses, 1)
	agent.Status.ContainerStatuses[0].RestartCount++
	agent.Status.ContainerStatuses[0].LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: metav1.Now()}}
	_, err = c.Client.CoreV1().Pods(ns).UpdateStatus(t.Context(), &agent, metav1.UpdateOptions{})
	require.NoError(t, err, "report the restart in the pod's status, as its kubelet would")

	code := p.exitCode(t)
	t.Logf("chaos run exited %d\nstdout:\n%s", code, p.stdout)
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Aborted, rec.Verdict, "the restart trips the budget long before the fault's 90s are up (reason: %s)", rec.Reason)
	require.Equal(t, reports.Aborted.ExitCode(), code)
	require.Len(t, rec.Budget, 1)
	require.True(t, rec.Budget[0].Tripped, "agent.restarts > 0 is the condition that stopped the run: %+v", rec.Budget[0])
}
