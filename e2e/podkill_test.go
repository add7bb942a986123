package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
	"github.com/chaos-run/chaos/reports"
)

// TestPodkill runs the podkill fault and the kubernetes probe through the
// real chaos binary against the real test cluster (kube-apiserver, etcd,
// kube-controller-manager, kwok as the node). One cluster serves every case;
// it is skipped when the cluster is not built and CHAOS_CLUSTER_BIN is
// unset, and fails when CHAOS_CLUSTER_BIN is set but it does not start.
func TestPodkill(t *testing.T) {
	c := startCluster(t)
	t.Logf("cluster %s ready in %s", c.Server, c.StartTime.Round(time.Millisecond))
	t.Setenv("KUBECONFIG", c.Kubeconfig)

	t.Run("kill one, replaced, passed", func(t *testing.T) { podkillPassed(t, c) })
	t.Run("kill two of three, failed", func(t *testing.T) { podkillFailed(t, c) })
	t.Run("protected namespace, invalid", func(t *testing.T) { podkillProtected(t, c) })
	t.Run("beyond maxTargets, refused", func(t *testing.T) { podkillMaxTargets(t, c) })
	t.Run("runner killed, recover", func(t *testing.T) { podkillRecover(t, c) })
	t.Run("rbac role", func(t *testing.T) { podkillRBAC(t, c) })
}

func tail(b []byte) string {
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

// newNamespace creates namespace ns and waits for its default service
// account (pods cannot be created in it before).
func newNamespace(t *testing.T, c *kubetest.Cluster, ns string) {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	require.NoError(t, err, "create namespace %s", ns)
	pollUntil(t, "default service account in "+ns, func(ctx context.Context) bool {
		_, err := c.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

// shop creates namespace ns with a Deployment "web" of n replicas on the
// kwok node and waits until all are Ready; it returns their uids.
//
// minReadySeconds is 2: kwok makes a replacement Ready at once, so without
// it a Deployment's ready count hardly moves; with it, available drops for
// two seconds per killed pod, as it would while a real pod starts.
func shop(t *testing.T, c *kubetest.Cluster, ns string, n int32) map[types.UID]bool {
	t.Helper()
	ctx := t.Context()
	newNamespace(t, c, ns)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas:        &n,
			MinReadySeconds: 2,
			Selector:        &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeName:   kubetest.NodeName, // no scheduler in the test cluster
					Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}},
				},
			},
		},
	}
	_, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err, "create deployment")
	var uids map[types.UID]bool
	pollUntil(t, fmt.Sprintf("%d pods of %s/web Ready", n, ns), func(ctx context.Context) bool {
		uids = readyPods(ctx, c.Client, ns)
		dep, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return len(uids) == int(n) && err == nil && dep.Status.AvailableReplicas == n
	})
	return uids
}

func readyPods(ctx context.Context, cs kubernetes.Interface, ns string) map[types.UID]bool {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil
	}
	out := map[types.UID]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && kubetest.PodReady(&p) {
			out[p.UID] = true
		}
	}
	return out
}

// podUIDs are the uids of every pod of app=web in ns, terminating or not.
func podUIDs(t *testing.T, c *kubetest.Cluster, ns string) map[types.UID]bool {
	t.Helper()
	pods, err := c.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	out := map[types.UID]bool{}
	for _, p := range pods.Items {
		out[p.UID] = true
	}
	return out
}

func pollUntil(t *testing.T, what string, ok func(ctx context.Context) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, waitLimit, true, func(ctx context.Context) (bool, error) {
		return ok(ctx), nil
	})
	require.NoError(t, err, "waiting for %s", what)
}

type podkillFile struct {
	ns, pick, steady, safety, with, forDur string
}

func (f podkillFile) write(t *testing.T) string {
	t.Helper()
	if f.pick == "" {
		f.pick = "{count: 1}"
	}
	if f.steady == "" {
		f.steady = "replicas.available >= 2"
	}
	if f.safety == "" {
		f.safety = "{maxDuration: 3m}"
	}
	if f.with == "" {
		f.with = "{recoveryTimeout: 60s}"
	}
	if f.forDur == "" {
		f.forDur = "3s"
	}
	body := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: web-survives-a-pod-kill
  owner: {team: shop}
spec:
  hypothesis: The web Deployment keeps its replicas through a pod kill.
  targets:
    web:
      kubernetes: {namespace: %[1]s, selector: app=web, pick: %[2]s}
  probes:
    replicas:
      kubernetes: {deployment: %[1]s/web}
      every: 100ms
      timeout: 2s
  steadyState:
    - %[3]s
  faults:
    - {plugin: podkill, target: web, with: %[5]s, after: 500ms, for: %[6]s}
  safety: %[4]s
`, f.ns, f.pick, f.steady, f.safety, f.with, f.forDur)
	path := filepath.Join(t.TempDir(), "podkill.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

type podkillRun struct {
	code   int
	rec    *reports.Record
	proc   *process
	states string
}

func runPodkill(t *testing.T, file string, env ...string) podkillRun {
	t.Helper()
	stateDir, reportDir := t.TempDir(), t.TempDir()
	p := startEnv(t, env, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, file)
	code := p.exitCode(t)
	t.Logf("chaos run exited %d\nstdout:\n%s\nstderr:\n%s", code, p.stdout, p.stderr)
	return podkillRun{code: code, rec: readRecord(t, reportDir), proc: p, states: stateDir}
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return start(t, bin, args...)
}

// recoveredAt is when (offset into the run) the probe first saw all 3
// available again after it saw fewer: the recovery the report shows.
func recoveredAt(rec *reports.Record) (dropped, recovered time.Duration) {
	for _, e := range events(rec, reports.EventProbe, "replicas") {
		avail, _ := e.Values["available"].(float64)
		switch {
		case dropped == 0 && e.OK && avail < 3:
			dropped = e.At
		case dropped != 0 && avail == 3:
			return dropped, e.At
		}
	}
	return dropped, 0
}

func podkillPassed(t *testing.T, c *kubetest.Cluster) {
	const ns = "pk-passed"
	before := shop(t, c, ns, 3)
	r := runPodkill(t, podkillFile{ns: ns}.write(t))
	require.Equal(t, reports.Passed, r.rec.Verdict, "one pod killed, replaced, available >= 2 throughout and 3 after: passed (reason: %s)", r.rec.Reason)
	require.Equal(t, reports.Passed.ExitCode(), r.code)
	require.Len(t, r.rec.Faults, 1)
	f := r.rec.Faults[0]
	t.Logf("resolved %q; detail %q", f.Resolved, f.Detail)
	require.Len(t, f.Resolved, 1, "the report names the one pod the fault killed")
	require.Contains(t, f.Resolved[0], ns+"/web-", "named namespace/name")
	require.Contains(t, f.Resolved[0], "node "+kubetest.NodeName, "and its node")
	require.Equal(t, "reverted", f.State)
	after := readyPods(t.Context(), c.Client, ns)
	require.Len(t, after, 3, "the ReplicaSet replaced the pod")
	gone := 0
	for uid := range before {
		if !after[uid] {
			gone++
			require.Contains(t, f.Resolved[0], string(uid), "the killed pod is the one the report names by uid")
		}
	}
	require.Equal(t, 1, gone, "exactly one pod was killed")
	requireKillDetail(t, f, before, after)
	dropped, recovered := recoveredAt(r.rec)
	require.NotZero(t, dropped, "the probe saw the kill (available < 3)")
	require.NotZero(t, recovered, "and the recovery (all 3 available again)")
	t.Logf("recovery seen by the probe: %s (available < 3 at %s, 3 again at %s)", recovered-dropped, dropped, recovered)
}

// killDetail is one killed pod as podkill's Status detail (recorded in the
// report's fault after the revert) names it.
var killDetail = regexp.MustCompile(`(\S+/\S+) \(uid (\S+), node (\S+)\) killed at (\S+), replacement (\S+) Ready at (\S+) \(after (\S+)\)`)

// requireKillDetail checks, from report.json, that the fault's detail names
// the killed pod (namespace, name, uid, node, when) and when its
// replacement, a pod that was not there before, became Ready.
func requireKillDetail(t *testing.T, f reports.Fault, before, after map[types.UID]bool) {
	t.Helper()
	m := killDetail.FindStringSubmatch(f.Detail)
	require.NotNil(t, m, "the fault's detail names the killed pod and its replacement's Ready time: %q", f.Detail)
	require.True(t, before[types.UID(m[2])], "the uid %s in the detail is a pod that was there before the run", m[2])
	require.False(t, after[types.UID(m[2])], "and is gone now: it is the killed pod")
	require.Equal(t, kubetest.NodeName, m[3], "the detail names the pod's node")
	killedAt, err := time.Parse(time.RFC3339Nano, m[4])
	require.NoError(t, err, "the kill time is RFC 3339")
	readyAt, err := time.Parse(time.RFC3339Nano, m[6])
	require.NoError(t, err, "the replacement's Ready time is RFC 3339")
	require.False(t, readyAt.Before(killedAt), "the replacement was Ready after the kill")
	require.False(t, killedAt.Before(f.InjectedAt.Add(-time.Minute)), "killed during this run")
	recovery, err := time.ParseDuration(m[7])
	require.NoError(t, err, "the recovery time is a duration")
	require.Equal(t, readyAt.Sub(killedAt).Round(time.Millisecond), recovery, "the recovery time is Ready minus killed")
	t.Logf("report.json fault detail: %s", f.Detail)
}

func podkillFailed(t *testing.T, c *kubetest.Cluster) {
	const ns = "pk-failed"
	before := shop(t, c, ns, 3)
	r := runPodkill(t, podkillFile{ns: ns, pick: "{count: 2}"}.write(t))
	require.Containsf(t, []reports.Verdict{reports.Failed, reports.Aborted}, r.rec.Verdict,
		"two of three killed with available >= 2 as the steady state: the hypothesis does not hold (reason: %s)", r.rec.Reason)
	require.Len(t, r.rec.Faults[0].Resolved, 2)
	after := readyPods(t.Context(), c.Client, ns)
	kept := 0
	for uid := range before {
		if after[uid] {
			kept++
		}
	}
	require.Equal(t, 1, kept, "two pods were killed")
}

func podkillProtected(t *testing.T, c *kubetest.Cluster) {
	const ns = "pk-protected"
	before := shop(t, c, ns, 3)
	r := runPodkill(t, podkillFile{ns: ns, safety: "{protectedNamespaces: [" + ns + "]}"}.write(t))
	require.Equal(t, reports.Invalid, r.rec.Verdict, "a protected namespace makes the file invalid (reason: %s)", r.rec.Reason)
	require.Equal(t, reports.Invalid.ExitCode(), r.code)
	require.Equal(t, before, podUIDs(t, c, ns), "nothing was killed")
}

func podkillMaxTargets(t *testing.T, c *kubetest.Cluster) {
	const ns = "pk-maxtargets"
	before := shop(t, c, ns, 3)
	// A count beyond maxTargets is caught in the file itself.
	r := runPodkill(t, podkillFile{ns: ns, pick: "{count: 2}", safety: "{maxTargets: 1}"}.write(t))
	require.Equal(t, reports.Invalid, r.rec.Verdict, "a count of 2 with maxTargets 1 is wrong in the file (reason: %s)", r.rec.Reason)
	require.Equal(t, before, podUIDs(t, c, ns), "nothing was killed")
	// `all` is only known on the real set: resolve lists 3 pods, more
	// than maxTargets 2, and the run is refused before anything is killed.
	r = runPodkill(t, podkillFile{ns: ns, pick: "{all: true}", safety: "{maxTargets: 2}"}.write(t))
	require.Equal(t, reports.Refused, r.rec.Verdict, "three pods resolved with maxTargets 2 (reason: %s)", r.rec.Reason)
	require.Equal(t, reports.Cause("blast-radius"), r.rec.Cause)
	require.Equal(t, reports.Refused.ExitCode(), r.code)
	require.Contains(t, r.rec.Reason, ns+"/web-", "the refusal names the pods")
	require.Equal(t, before, podUIDs(t, c, ns), "nothing was killed")
}

func podkillRecover(t *testing.T, c *kubetest.Cluster) {
	const ns = "pk-recover"
	before := shop(t, c, ns, 3)
	file := podkillFile{ns: ns, forDur: "2m", safety: "{maxDuration: 5m, leaseTTL: 1m}"}.write(t)
	stateDir, reportDir := t.TempDir(), t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, file)
	run.waitLine(t, run.stderr, "msg=inject")
	pollUntil(t, "the ledger holds the kill's handle", func(context.Context) bool {
		open := openEntries(t, stateDir)
		return len(open) == 1 && open[0].Handle != ""
	})
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL))
	run.exitCode(t)
	requireKilled(t, run)
	open := openEntries(t, stateDir)
	require.Len(t, open, 1, "the ledger keeps the kill open")
	killed := 0
	for uid := range before {
		if strings.Contains(open[0].Handle, string(uid)) {
			killed++
			require.False(t, readyPods(t.Context(), c.Client, ns)[uid], "the pod the ledger names is gone")
		}
	}
	require.Equal(t, 1, killed, "the ledger names the killed pod by uid: %s", open[0].Handle)

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equal(t, 0, rec.exitCode(t), "recover closes the entry\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	require.Contains(t, rec.stdout.String()+rec.stderr.String(), "not revertible", "recover says a kill cannot be undone")
	require.Empty(t, openEntries(t, stateDir), "nothing is left open")
}

// podkillRBAC runs podkill with a service account's token bound to the Role
// of deploy/rbac-podkill.yaml (the kill works), and with a Role lacking
// delete (invalid, naming the permission, nothing killed).
func podkillRBAC(t *testing.T, c *kubetest.Cluster) {
	role := readRole(t)
	for _, tc := range []struct {
		name, ns string
		drop     string
		verdict  reports.Verdict
	}{
		{"least-privilege role", "pk-rbac", "", reports.Passed},
		{"role without delete", "pk-rbac-nodelete", "delete", reports.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := shop(t, c, tc.ns, 3)
			r := role.DeepCopy()
			r.Namespace = tc.ns
			if tc.drop != "" {
				for i := range r.Rules {
					var verbs []string
					for _, v := range r.Rules[i].Verbs {
						if v != tc.drop {
							verbs = append(verbs, v)
						}
					}
					r.Rules[i].Verbs = verbs
				}
			}
			kubeconfig := serviceAccountKubeconfig(t, c, tc.ns, r)
			res := runPodkill(t, podkillFile{ns: tc.ns}.write(t), "KUBECONFIG="+kubeconfig)
			require.Equal(t, tc.verdict, res.rec.Verdict, "reason: %s", res.rec.Reason)
			if tc.drop != "" {
				out := res.proc.stdout.String() + res.proc.stderr.String() + res.rec.Reason
				require.Contains(t, out, `missing "delete" on pods`, "the error names the missing permission")
				require.Equal(t, before, podUIDs(t, c, tc.ns), "nothing was killed")
			}
		})
	}
	t.Setenv("KUBECONFIG", c.Kubeconfig)
}

func readRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "deploy", "rbac-podkill.yaml"))
	require.NoError(t, err)
	defer f.Close()
	var role rbacv1.Role
	require.NoError(t, k8syaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&role), "the first document is the Role")
	require.Equal(t, "Role", role.Kind)
	return &role
}

// serviceAccountKubeconfig creates a service account in ns bound to role and
// writes a kubeconfig with a token of it.
func serviceAccountKubeconfig(t *testing.T, c *kubetest.Cluster, ns string, role *rbacv1.Role) string {
	t.Helper()
	ctx := t.Context()
	cs := c.Client
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chaos"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	role.ResourceVersion = ""
	_, err = cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
	require.NoError(t, err, "create the Role")
	_, err = cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "chaos", Namespace: ns}},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "bind the Role")
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "chaos", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	require.NoError(t, err, "a token of the service account")
	admin, err := clientcmd.LoadFromFile(c.Kubeconfig)
	require.NoError(t, err)
	var cluster *clientcmdapi.Cluster
	for _, cl := range admin.Clusters {
		cluster = cl
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = cluster
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "sa"}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*cfg, path))
	return path
}
