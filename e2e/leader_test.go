package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
)

// startCluster starts the real test cluster for one test, or skips when it
// is not built and CHAOS_CLUSTER_BIN is unset.
func startCluster(t *testing.T) *kubetest.Cluster {
	t.Helper()
	bin, required, err := kubetest.Binaries()
	if err != nil {
		if required || !errors.Is(err, kubetest.ErrNotBuilt) {
			require.NoError(t, err, "CHAOS_CLUSTER_BIN is set: the test cluster must be there")
		}
		t.Skipf("no test cluster: %v", err)
	}
	logs, err := os.Create(filepath.Join(t.TempDir(), "cluster.log"))
	require.NoError(t, err)
	c, err := kubetest.Start(t.Context(), bin, logs)
	if err != nil {
		b, _ := os.ReadFile(logs.Name())
		require.NoError(t, err, "the test cluster must start; its log ends:\n%s", tail(b))
	}
	t.Cleanup(c.Stop)
	return c
}

func createNamespace(t *testing.T, c *kubetest.Cluster, name string) {
	t.Helper()
	_, err := c.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err, "create namespace %s", name)
	}
}

// TestScheduleLeaderElection runs two `chaos schedule --leader-elect`
// replicas of one schedule on one shared state directory against the real
// test cluster's API server: one leads (the Lease names it) and only it
// runs experiments; SIGKILLed in the middle of a run, the other acquires
// the Lease, reverts the dead leader's live fault (recover) and runs the
// next fires; no fire runs on both. Then deploy/*.yaml is applied to the
// cluster and read back.
func TestScheduleLeaderElection(t *testing.T) {
	c := startCluster(t)
	createNamespace(t, c, "chaos")
	t.Run("failover", func(t *testing.T) { leaderFailover(t, c) })
	t.Run("deploy applies", func(t *testing.T) { deployApplies(t, c) })
}

const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

func leaderFailover(t *testing.T, c *kubetest.Cluster) {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "tick", faultFor: "2s"})
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", exp.File, "*/3 * * * * *"))
	state, dir := t.TempDir(), t.TempDir()
	replica := func() *process {
		return start(t, built.chaos, "schedule", "--leader-elect", "--kubeconfig", c.Kubeconfig,
			"--lease-namespace", "chaos", "--lease-name", "e2e-scheduler",
			"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(), "--retry-period", retryPeriod.String(),
			"--state-dir", state, "--report-dir", dir, "--listen", "", sched)
	}
	a := replica()
	idA := fieldOf(a.waitLine(t, a.stderr, "msg=leading"), "identity=")
	b := replica()
	follow := b.waitLine(t, b.stderr, "msg=following")
	idB := fieldOf(follow, "identity=")
	require.Equal(t, idA, fieldOf(follow, "leader="), "the second replica follows the first")
	require.NotEqual(t, idA, idB)
	lease, err := c.Client.CoordinationV1().Leases("chaos").Get(t.Context(), "e2e-scheduler", metav1.GetOptions{})
	require.NoError(t, err, "the Lease exists")
	require.Equal(t, idA, *lease.Spec.HolderIdentity, "the Lease names the leader")

	a.waitLine(t, a.stderr, "msg=ran")
	// Kill the leader while its next run's fault is live.
	require.Eventually(t, func() bool { return strings.Count(a.stderr.String(), "msg=inject") >= 2 }, waitLimit, 50*time.Millisecond,
		"the leader's second run injects\nstderr:\n%s", a.stderr)
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	<-a.exited
	killed := time.Now()

	b.waitLine(t, b.stderr, "msg=leading")
	took := time.Since(killed)
	t.Logf("the follower led %s after the leader was killed (lease %s, retry %s)", took.Round(time.Millisecond), leaseDuration, retryPeriod)
	lease, err = c.Client.CoordinationV1().Leases("chaos").Get(t.Context(), "e2e-scheduler", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, idB, *lease.Spec.HolderIdentity, "the Lease names the new leader")
	// How soon is measured, not asserted (tests never assert wall-clock
	// speed): client-go's bound is the lease duration plus a retry period
	// or so; the Lease's own acquire time is what is reported.
	t.Logf("takeover: the Lease was acquired %s after the leader's death (lease %s + retry %s)",
		lease.Spec.AcquireTime.Sub(killed).Round(time.Millisecond), leaseDuration, retryPeriod)
	rec := b.waitLine(t, b.stderr, "msg=recovered")
	require.Equal(t, "0", fieldOf(rec, "failed="), "the new leader reverted the dead leader's live fault:\n%s", b.stderr)
	require.NotContains(t, b.stderr.String(), "nothing to recover", "the dead leader held a live fault for the new leader to revert")
	ran := b.waitLine(t, b.stderr, "msg=ran")
	require.Contains(t, ran, "verdict=passed", "the new leader's run passed")

	require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, b.exitCode(t), "stderr:\n%s", b.stderr)

	// Runs came from one identity at a time, and no fire ran on both.
	dueA, dueB := dues(a.stderr.String(), "msg=run "), dues(b.stderr.String(), "msg=run ")
	require.NotEmpty(t, dueA)
	require.NotEmpty(t, dueB)
	require.NotContains(t, b.stderr.String(), "msg=ran identity="+idA)
	for d := range dueB {
		require.False(t, dueA[d], "the fire due %s ran on both replicas", d)
	}
	require.NotContains(t, a.stderr.String(), "msg=following", "the first replica never followed before it was killed")
	// Every fire is claimed in the shared state directory by one identity.
	claims, err := filepath.Glob(filepath.Join(state, "fires", "tick", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, claims)
	for _, cl := range claims {
		who := strings.TrimSpace(readFile(t, filepath.Dir(cl), filepath.Base(cl)))
		require.Contains(t, []string{idA, idB}, who, "claim %s", cl)
	}
	for _, r := range reportsOf(t, dir, "tick") {
		require.NotEmpty(t, r.Verdict)
	}
	requireNothingLeft(t, exp)
}

var dueRE = regexp.MustCompile(`due=(\S+)`)

// dues is the set of due times of the log lines containing s.
func dues(log, s string) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, s) {
			if m := dueRE.FindStringSubmatch(l); m != nil {
				out[m[1]] = true
			}
		}
	}
	return out
}

// deployApplies applies deploy/*.yaml with kubectl and reads it back.
func deployApplies(t *testing.T, c *kubetest.Cluster) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("no kubectl: %v", err)
	}
	createNamespace(t, c, "shop")
	out, err := exec.CommandContext(t.Context(), kubectl, "--kubeconfig", c.Kubeconfig, "apply", "-f", filepath.Join("..", "deploy")).CombinedOutput()
	require.NoError(t, err, "kubectl apply -f deploy/:\n%s", out)
	ctx := t.Context()
	d, err := c.Client.AppsV1().Deployments("chaos").Get(ctx, "chaos-scheduler", metav1.GetOptions{})
	require.NoError(t, err)
	require.EqualValues(t, 2, *d.Spec.Replicas, "two replicas: leader election makes one schedule")
	require.Contains(t, d.Spec.Template.Spec.Containers[0].Args, "--leader-elect")
	_, err = c.Client.CoreV1().ConfigMaps("chaos").Get(ctx, "chaos-schedules", metav1.GetOptions{})
	require.NoError(t, err)
	_, err = c.Client.BatchV1().CronJobs("chaos").Get(ctx, "checkout-pod-loss-nightly", metav1.GetOptions{})
	require.NoError(t, err)
	role, err := c.Client.RbacV1().Roles("chaos").Get(ctx, "chaos-scheduler", metav1.GetOptions{})
	require.NoError(t, err)
	for _, r := range role.Rules {
		require.Equal(t, []string{"coordination.k8s.io"}, r.APIGroups, "the scheduler's own Role is about Leases only")
	}
	_, err = c.Client.RbacV1().Roles("shop").Get(ctx, "chaos-experiments", metav1.GetOptions{})
	require.NoError(t, err)
}
