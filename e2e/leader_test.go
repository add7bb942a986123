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
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	kubetest "github.com/chaos-run/chaos/e2e/kube"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/safety"
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
// runs experiments. The leader then goes, three ways: SIGKILLed in the
// middle of a run; SIGSTOPped past its Lease with a fault live and then
// woken; and still running while its Lease is given to another holder
// through the API. Each time the other replica takes the Lease, catches up
// the fires of the leaderless gap, and schedules on; a leader that lost
// its Lease alive starts nothing more, reverts what it had live and exits
// non-zero; every fire is decided (claimed) exactly once, none runs on
// both. Then deploy/*.yaml is applied to the cluster and read back.
func TestScheduleLeaderElection(t *testing.T) {
	c := startCluster(t)
	createNamespace(t, c, "chaos")
	t.Run("failover", func(t *testing.T) { leaderFailover(t, c) })
	t.Run("stopped past the lease", func(t *testing.T) { leaderStopped(t, c) })
	t.Run("lease taken while alive", func(t *testing.T) { leaseTaken(t, c) })
	t.Run("deploy applies", func(t *testing.T) { deployApplies(t, c) })
}

const (
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
	tickEvery     = 3 * time.Second // the cron below
)

// leaders is two replicas of one schedule, a leading and b following, on
// one shared state directory and one Lease.
type leaders struct {
	a, b          *process
	idA, idB      string
	lease         string
	state, dir    string
	oldClaims     []time.Time // what prepare left in state
	exp           *experiments.Experiment
	clusterClient *kubetest.Cluster
}

// startLeaders starts the two replicas; prepare, if given, first fills
// the state directory.
func startLeaders(t *testing.T, c *kubetest.Cluster, lease string, prepare ...func(state string) []time.Time) *leaders {
	tg := startTarget(t)
	exp := writeExperiment(t, tg, experimentOpts{name: "tick", faultFor: "2s"})
	sched := writeScheduleFile(t, fmt.Sprintf("    - {name: tick, experiments: [%q], cron: %q, concurrencyPolicy: Forbid}\n", exp.File, "*/3 * * * * *"))
	l := &leaders{lease: lease, state: t.TempDir(), dir: t.TempDir(), exp: exp, clusterClient: c}
	for _, p := range prepare {
		l.oldClaims = append(l.oldClaims, p(l.state)...)
	}
	replica := func() *process {
		return start(t, built.chaos, "schedule", "--leader-elect", "--kubeconfig", c.Kubeconfig,
			"--lease-namespace", "chaos", "--lease-name", lease,
			"--lease-duration", leaseDuration.String(), "--renew-deadline", renewDeadline.String(), "--retry-period", retryPeriod.String(),
			"--state-dir", l.state, "--report-dir", l.dir, "--listen", "", sched)
	}
	l.a = replica()
	l.idA = fieldOf(l.a.waitLine(t, l.a.stderr, "msg=leading"), "identity=")
	l.b = replica()
	follow := l.b.waitLine(t, l.b.stderr, "msg=following")
	l.idB = fieldOf(follow, "identity=")
	require.Equal(t, l.idA, fieldOf(follow, "leader="), "the second replica follows the first")
	require.NotEqual(t, l.idA, l.idB)
	require.Equal(t, l.idA, l.holder(t), "the Lease names the leader")
	return l
}

func (l *leaders) get(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	lease, err := l.clusterClient.Client.CoordinationV1().Leases("chaos").Get(t.Context(), l.lease, metav1.GetOptions{})
	require.NoError(t, err, "the Lease exists")
	return lease
}

func (l *leaders) holder(t *testing.T) string {
	t.Helper()
	return *l.get(t).Spec.HolderIdentity
}

// liveSecondRun waits until the leader's second run has injected its
// fault (the first has ended): the leader goes with a fault live.
func (l *leaders) liveSecondRun(t *testing.T) {
	t.Helper()
	l.a.waitLine(t, l.a.stderr, "msg=ran")
	require.Eventually(t, func() bool { return strings.Count(l.a.stderr.String(), "msg=inject") >= 2 }, waitLimit, 50*time.Millisecond,
		"the leader's second run injects\nstderr:\n%s", l.a.stderr)
}

// takenOver waits until b leads and returns when the Lease says it took it.
func (l *leaders) takenOver(t *testing.T) time.Time {
	t.Helper()
	l.b.waitLine(t, l.b.stderr, "msg=leading")
	lease := l.get(t)
	require.Equal(t, l.idB, *lease.Spec.HolderIdentity, "the Lease names the new leader")
	return lease.Spec.AcquireTime.Time
}

// stopB stops the new leader once it has run a passed run, and checks
// what both replicas did: runs came from one identity at a time, no fire
// ran on both, every fire from a's first to b's last was decided (claimed)
// exactly once with no gap, and a claimed nothing due after b took the
// Lease. It returns b's stderr.
func (l *leaders) stopB(t *testing.T, took time.Time) string {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(l.b.stderr.String(), "verdict=passed") }, waitLimit, 50*time.Millisecond,
		"the new leader runs and passes\nstderr:\n%s", l.b.stderr)
	require.NoError(t, l.b.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, l.b.exitCode(t), "stderr:\n%s", l.b.stderr)
	logA, logB := l.a.stderr.String(), l.b.stderr.String()

	dueA, dueB := dues(logA, "msg=run "), dues(logB, "msg=run ")
	require.NotEmpty(t, dueA)
	require.NotEmpty(t, dueB)
	require.NotContains(t, logB, "msg=ran identity="+l.idA)
	for d := range dueB {
		require.False(t, dueA[d], "the fire due %s ran on both replicas", d)
	}

	// Every instant the schedule's one entry fired on is claimed in the
	// shared state directory by one identity, one after another every 3s:
	// the new leader caught up the gap.
	names, err := os.ReadDir(firesOf(l.state, ""))
	require.NoError(t, err)
	var prev time.Time
	for _, n := range names {
		if n.IsDir() {
			continue // an entry's folder: tick's since file, gone's old claims
		}
		at, err := time.Parse(claimLayout, n.Name())
		require.NoError(t, err, "only claims of instants in fires/e2e")
		who := strings.TrimSpace(readFile(t, firesOf(l.state, ""), n.Name()))
		require.Contains(t, []string{l.idA, l.idB}, who, "claim %s", n.Name())
		if !prev.IsZero() {
			require.Equal(t, tickEvery, at.Sub(prev), "no fire between %s and %s went undecided\nA:\n%s\nB:\n%s", prev, at, logA, logB)
		}
		if who == l.idA {
			require.True(t, at.Before(took), "the old leader claimed the fire due %s, after the new one took the Lease at %s", at, took)
		}
		prev = at
	}
	for _, r := range reportsOf(t, l.dir, "tick") {
		require.NotEmpty(t, r.Verdict)
	}
	return logB
}

func leaderFailover(t *testing.T, c *kubetest.Cluster) {
	l := startLeaders(t, c, "e2e-scheduler", oldClaims(t))
	// Kill the leader while its next run's fault is live.
	l.liveSecondRun(t)
	require.NoError(t, l.a.cmd.Process.Signal(syscall.SIGKILL))
	<-l.a.exited
	killed := time.Now()

	took := l.takenOver(t)
	// How soon is measured, not asserted (tests never assert wall-clock
	// speed): client-go's bound is the lease duration plus a retry period
	// or so; the Lease's own acquire time is what is reported.
	t.Logf("takeover: the Lease was acquired %s after the leader's death (lease %s + retry %s)",
		took.Sub(killed).Round(time.Millisecond), leaseDuration, retryPeriod)
	rec := l.b.waitLine(t, l.b.stderr, "msg=recovered")
	require.Equal(t, "0", fieldOf(rec, "failed="), "the new leader reverted the dead leader's live fault:\n%s", l.b.stderr)
	require.NotContains(t, l.b.stderr.String(), "nothing to recover", "the dead leader held a live fault for the new leader to revert")
	require.NotContains(t, l.a.stderr.String(), "msg=following", "the first replica never followed before it was killed")
	l.b.waitLine(t, l.b.stderr, `msg="catch up"`)
	// The claims are pruned as the leaders go: an entry the schedule no
	// longer has keeps only its newest claim of two hours ago.
	gone := firesOf(l.state, "gone")
	require.Eventually(t, func() bool {
		des, err := os.ReadDir(gone)
		return err == nil && len(des) == 1
	}, waitLimit, 50*time.Millisecond, "the old claims are pruned")
	_, err := os.Stat(filepath.Join(gone, l.oldClaims[len(l.oldClaims)-1].Format(claimLayout)))
	require.NoError(t, err, "an entry's newest claim is kept")
	l.stopB(t, took)
	requireNothingLeft(t, l.exp)
}

// oldClaims prepares a state directory as leaders of the versions before
// per-instant claims left it: per-fire claims (STATE/fires/e2e/ENTRY/TIME)
// of an entry the schedule no longer has, from two hours ago, older than
// they are kept (the longest starting deadline plus 10 minutes). They are
// still pruned, the entry's newest kept.
func oldClaims(t *testing.T) func(state string) []time.Time {
	return func(state string) []time.Time {
		gone := firesOf(state, "gone")
		require.NoError(t, os.MkdirAll(gone, 0o700))
		old := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
		var ats []time.Time
		for i := range 5 {
			at := old.Add(time.Duration(i) * time.Minute)
			require.NoError(t, os.WriteFile(filepath.Join(gone, at.Format(claimLayout)), []byte("old_1\n"), 0o600))
			ats = append(ats, at)
		}
		return ats
	}
}

// leaderStopped: the leader is SIGSTOPped with a fault live, past its
// Lease. The follower takes the Lease and leaves the stopped leader's
// ledger entries alone (their runner is alive: its flock is held). Woken,
// the old leader finds its fence down (not renewed within the renew
// deadline), starts nothing, reverts its live run and exits non-zero.
func leaderStopped(t *testing.T, c *kubetest.Cluster) {
	l := startLeaders(t, c, "e2e-stopped")
	l.liveSecondRun(t)
	// Stopped once the fault is in the ledger as injected: the leader then
	// leaves the ledger alone until its revert. Stopped while it writes
	// the ledger, it would hold the ledger's lock, and every replica's
	// recover and runs would wait for it (safety's flock has no deadline).
	ledger, err := safety.OpenLedger(l.state)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		open, _, err := ledger.Read()
		require.NoError(t, err)
		for _, e := range open {
			if !e.Prepared && e.State == safety.StateInjected {
				return true
			}
		}
		return false
	}, waitLimit, 20*time.Millisecond, "the second run's fault is in the ledger as injected")
	require.NoError(t, l.a.cmd.Process.Signal(syscall.SIGSTOP))
	took := l.takenOver(t)
	rec := l.b.waitLine(t, l.b.stderr, "msg=recovered")
	require.Equal(t, "0", fieldOf(rec, "failed="), "a live runner's entries are skipped, not failed:\n%s", l.b.stderr)
	require.Contains(t, l.b.stderr.String(), "skipped ", "the stopped leader's live fault is left to it (its runner is alive)")
	l.b.waitLine(t, l.b.stderr, `msg="catch up"`)

	require.NoError(t, l.a.cmd.Process.Signal(syscall.SIGCONT))
	require.NotEqual(t, 0, l.a.exitCode(t), "a leader that lost its Lease exits non-zero\nstderr:\n%s", l.a.stderr)
	logA := l.a.stderr.String()
	require.Contains(t, logA, "msg=\"lease lost\"")
	require.Contains(t, logA, "cause=lease-lost")
	requireRevertedLast(t, logA)
	// Woken, client-go in the old leader releases the Lease from its stale
	// view (it still thinks it holds it); the fence refuses that write.
	require.Equal(t, l.idB, l.holder(t), "the old leader, woken, left the new leader's Lease alone")
	l.stopB(t, took)
	requireNothingLeft(t, l.exp)
}

// leaseTaken: while the leader runs, the Lease is given to another holder
// through the API. The leader's next read of the Lease drops its fence: it
// starts nothing more, reverts its live run and exits non-zero. The
// follower takes the Lease once that holder's lease has run out, finds
// nothing to recover (the old leader reverted its own run) and catches up
// the fires no one decided.
func leaseTaken(t *testing.T, c *kubetest.Cluster) {
	l := startLeaders(t, c, "e2e-taken")
	l.liveSecondRun(t)
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease := l.get(t)
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity = ptr.To("intruder")
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		_, err := c.Client.CoordinationV1().Leases("chaos").Update(t.Context(), lease, metav1.UpdateOptions{})
		return err
	}), "give the Lease to another holder")

	require.NotEqual(t, 0, l.a.exitCode(t), "a leader that lost its Lease exits non-zero\nstderr:\n%s", l.a.stderr)
	logA := l.a.stderr.String()
	require.Contains(t, logA, `the Lease names \"intruder\"`, "the leader saw the new holder")
	requireRevertedLast(t, logA)
	took := l.takenOver(t)
	rec := l.b.waitLine(t, l.b.stderr, "msg=recovered")
	require.Equal(t, "0", fieldOf(rec, "failed="))
	l.b.waitLine(t, l.b.stderr, `msg="catch up"`)
	logB := l.stopB(t, took)
	// The fire the new leader caught up ran late, due before it led.
	caught := false
	for d := range dues(logB, "msg=run ") {
		at, err := time.Parse(time.RFC3339Nano, d)
		require.NoError(t, err)
		caught = caught || at.Before(took)
	}
	require.True(t, caught, "the new leader ran the newest fire of the gap, within its starting deadline:\n%s", logB)
	requireNothingLeft(t, l.exp)
}

// requireRevertedLast checks that the last run in a leader's log, live
// when it lost its Lease, was aborted and its faults reverted by that
// leader itself (its report says so).
func requireRevertedLast(t *testing.T, log string) {
	t.Helper()
	var last string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=ran ") {
			last = l
		}
	}
	require.Contains(t, last, "verdict=aborted", "the run live when the Lease was lost is aborted:\n%s", log)
	rec := readRecord(t, fieldOf(last, "reportDir="))
	require.NotEmpty(t, rec.Faults)
	for _, f := range rec.Faults {
		require.Equal(t, "reverted", f.State, "the old leader reverted its live fault itself")
	}
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
