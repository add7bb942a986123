package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/proctest"
	"github.com/chaos-run/chaos/reports"
)

// The tests of this file run the cpustress plugin through the real chaos
// binary: against the demo service in a cgroup with a CPU quota, and with the
// runner or the plugin killed mid-fault.

// cpuCgroup makes a cgroup of the test's own in the hierarchy that holds the
// cpu controller (v1 beside a unified v2, or v2 alone) with a quota of
// quotaPct of one core, and returns its path and directory. It skips when
// the test is not root or no cpu controller is writable.
func cpuCgroup(t *testing.T, quotaPct int) (path, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the cpustress cgroup test makes a cgroup: it needs root")
	}
	f, err := os.Open("/proc/self/mountinfo")
	require.NoError(t, err)
	defer f.Close()
	var v1, v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch {
		case tail[0] == "cgroup" && slices.Contains(strings.Split(tail[2], ","), "cpu"):
			v1 = fields[4]
		case tail[0] == "cgroup2" && v2 == "":
			v2 = fields[4]
		}
	}
	path = fmt.Sprintf("/chaos-e2e-cpustress-%d", rand.Int64())
	var knobs [][2]string
	switch {
	case v1 != "":
		dir = filepath.Join(v1, path)
		knobs = [][2]string{{"cpu.cfs_period_us", "100000"}, {"cpu.cfs_quota_us", strconv.Itoa(quotaPct * 1000)}}
	case v2 != "":
		dir = filepath.Join(v2, path)
		knobs = [][2]string{{"cpu.max", fmt.Sprintf("%d 100000", quotaPct*1000)}}
	default:
		t.Skip("no cgroup hierarchy with the cpu controller is mounted")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Wait for what the test put there (the demo) to be gone.
		poll(waitLimit, func() bool { return os.Remove(dir) == nil })
	})
	for _, k := range knobs {
		if err := os.WriteFile(filepath.Join(dir, k[0]), []byte(k[1]), 0); err != nil {
			t.Skipf("cannot set a cpu quota on %s: %v", dir, err)
		}
	}
	return path, dir
}

// cgroupProcs lists the processes in a cgroup, sorted.
func cgroupProcs(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	require.NoError(t, err)
	out := strings.Fields(string(b))
	slices.Sort(out)
	return out
}

// throttled is how many periods the kernel has throttled the cgroup for
// its quota (nr_throttled of cpu.stat, v1 and v2 alike).
func throttled(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "nr_throttled "); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			return n
		}
	}
	return 0
}

// cpuWorkers lists the live cpustress workers, optionally only those with
// a handle, from /proc: argv[0] is their marker, argv[4] their handle.
func cpuWorkers(t *testing.T, handle string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if len(args) != 6 || args[0] != "chaos-cpustress-worker" || (handle != "" && args[4] != handle) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// medianLatency asks the front n times and returns the median time.
func medianLatency(t *testing.T, front string, n int) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		ds = append(ds, askFront(t, front))
	}
	return median(ds)
}

// askFront asks the front once and returns how long it took.
func askFront(t *testing.T, front string) time.Duration {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	start := time.Now()
	resp, err := c.Get("http://" + front + "/health")
	require.NoError(t, err, "the front answers (slowly or not)")
	_ = resp.Body.Close()
	return time.Since(start)
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// writeCPUExperiment writes an experiment with a cpustress fault on target
// (YAML of a target) and a front probe whose steady state holds however
// slow the front is.
func writeCPUExperiment(t *testing.T, name, front, target, with, faultFor string) string {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: %s
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: The front answers 200 while the CPU is busy.
  targets:
    svc: %s
  probes:
    front:
      http: {url: %q}
      every: 200ms
      timeout: 10s
  steadyState:
    - front.status == 200
  faults:
    - plugin: cpustress
      target: svc
      with: %s
      after: 200ms
      for: %s
  safety:
    maxDuration: 20m
`, name, target, "http://"+front+"/health", with, faultFor)
	path := filepath.Join(t.TempDir(), name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	_, err := experiments.Load(path, experiments.Options{})
	require.NoError(t, err, "the test's own experiment file is valid:\n%s", text)
	return path
}

// TestCPUStressSlowsTheDemoInItsCgroup: the demo runs in a cgroup with 10 %
// of a core; a cpustress fault on its process puts two workers in that
// cgroup, which eat the quota: the kernel throttles the cgroup, and while
// the front is asked for, the workers get more of the cgroup's CPU than the
// demo does (CPU accounting from /proc, not wall-clock latency, which the
// test only logs); after the revert the cgroup holds the demo alone, as
// before.
func TestCPUStressSlowsTheDemoInItsCgroup(t *testing.T) {
	_, dir := cpuCgroup(t, 10)
	demo := start(t, built.demo, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0", "-backend-url", "", "-timeout", "5s")
	t.Cleanup(func() { _ = demo.cmd.Process.Signal(os.Interrupt); demo.exitCode(t) })
	line := demo.waitLine(t, demo.stdout, "ready ")
	var front string
	for _, f := range strings.Fields(line)[1:] {
		if v, ok := strings.CutPrefix(f, "front="); ok {
			front = v
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(demo.cmd.Process.Pid)), 0))
	alone := cgroupProcs(t, dir)

	before := medianLatency(t, front, 15)
	exp := writeCPUExperiment(t, "cpustress-demo", front, fmt.Sprintf("{process: {pid: %d}}", demo.cmd.Process.Pid), "{load: 100, workers: 2}", "10s")
	stateDir, reportDir := t.TempDir(), t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, "--report-dir", reportDir, exp)
	waitInjected(t, run, stateDir)
	throttledAtInject := throttled(t, dir)
	// Measure once the kernel has throttled the cgroup for a while: the
	// workers have its quota, and have raised their priority in it.
	require.True(t, poll(waitLimit, func() bool { return throttled(t, dir) >= throttledAtInject+10 }), "the workers eat the cgroup's quota: the kernel throttles it")
	workers := cpuWorkers(t, "")
	require.Len(t, workers, 2)
	inCgroup := cgroupProcs(t, dir)
	for _, w := range workers {
		require.Contains(t, inCgroup, strconv.Itoa(w), "the workers run in the target's cgroup")
	}
	// Over ten more throttled periods (a second of the quota at least),
	// with the front asked for all along, the workers get more of the
	// quota than the demo.
	workersCPU, demoCPU, throttledNow := proctest.CPU(workers...), proctest.CPU(demo.cmd.Process.Pid), throttled(t, dir)
	var asked []time.Duration
	require.True(t, poll(waitLimit, func() bool {
		asked = append(asked, askFront(t, front))
		return throttled(t, dir) >= throttledNow+10
	}))
	workersCPU, demoCPU = proctest.CPU(workers...)-workersCPU, proctest.CPU(demo.cmd.Process.Pid)-demoCPU
	require.Len(t, cpuWorkers(t, ""), 2, "the fault lasted while the front was asked for")
	during := median(asked)
	require.Equalf(t, 0, run.exitCode(t), "the run passes (the front answers 200, slowly)\nstderr:\n%s", run.stderr)
	after := medianLatency(t, front, 15)
	t.Logf("front median latency: before %s, during the fault %s, after the revert %s", before, during, after)
	t.Logf("CPU over ten throttled periods: workers %s, demo %s", workersCPU, demoCPU)
	require.Greater(t, workersCPU, demoCPU, "the workers take the cgroup's quota from the demo while the front is asked for")

	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Passed, rec.Verdict)
	require.Contains(t, strings.Join(rec.Faults[0].Resolved, " "), fmt.Sprintf("pid %d", demo.cmd.Process.Pid), "the report names the process the fault acted on")
	require.Equal(t, alone, cgroupProcs(t, dir), "after the run the cgroup holds the demo alone, as before")
	require.Empty(t, cpuWorkers(t, ""), "no worker is left")
	require.Empty(t, openEntries(t, stateDir))
}

// TestCPUStressWorkersDieWithTheirRunner: SIGKILL of the runner, and
// separately of the plugin, mid-fault leaves no worker within the lease
// TTL and 2 s, and `chaos recover` then finds nothing open or cleans it.
func TestCPUStressWorkersDieWithTheirRunner(t *testing.T) {
	front, _ := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0", "-backend-url", "", "-timeout", "5s")
	for _, victim := range []string{"runner", "plugin"} {
		t.Run(victim, func(t *testing.T) {
			exp := writeCPUExperiment(t, "cpustress-kill-"+victim, front, "{host: {}}", "{load: 20, workers: 2}", "10m")
			stateDir := t.TempDir()
			run := start(t, built.chaos, "run", "--state-dir", stateDir, exp)
			waitInjected(t, run, stateDir)
			open := openEntries(t, stateDir)
			require.Len(t, open, 1)
			handle := open[0].Handle
			require.Len(t, cpuWorkers(t, handle), 2, "two workers carry the handle the ledger recorded")

			if victim == "runner" {
				require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL))
				run.exitCode(t)
				requireKilled(t, run)
			} else {
				pl := pluginOf(t, run)
				require.NoError(t, syscall.Kill(pl.pid, syscall.SIGKILL))
				require.Equal(t, reports.Error.ExitCode(), run.exitCode(t), "a dead plugin is an error of the run")
			}
			require.True(t, poll(leaseBound, func() bool { return len(cpuWorkers(t, handle)) == 0 }),
				"no worker may outlive its %s by more than the lease TTL + 2s", victim)

			rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
			require.Equalf(t, 0, rec.exitCode(t), "chaos recover\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
			require.Empty(t, openEntries(t, stateDir), "recover leaves the ledger clean")
			require.Empty(t, cpuWorkers(t, handle), "and no worker")
			requireNoPlugins(t)
		})
	}
}
