package cpustress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// testCgroup makes a cgroup of its own in the hierarchy that holds the cpu
// controller (v1 or v2), with a CPU quota of quotaPct of a core, and
// removes it when the test ends. It skips when the test may not.
func testCgroup(t *testing.T, quotaPct int) cgroup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	hs, err := cpuHierarchies()
	if err != nil {
		t.Skipf("no cgroup cpu controller: %v", err)
	}
	i := slices.IndexFunc(hs, ownsCPU)
	require.GreaterOrEqual(t, i, 0)
	c := cgroup{h: hs[i], path: fmt.Sprintf("/chaos-cpustress-test-%d", rand.Int64())}
	if err := os.Mkdir(c.dir(), 0o755); err != nil {
		t.Skipf("cannot make a cgroup under %s: %v", c.h.mount, err)
	}
	t.Cleanup(func() {
		require.NoError(t, os.Remove(c.dir()), "the test's cgroup must be empty at the end: nothing of the fault may be left in it")
	})
	quota := func(file, value string) {
		if err := os.WriteFile(filepath.Join(c.dir(), file), []byte(value), 0); err != nil {
			t.Skipf("cannot set a cpu quota on %s (%s): %v", c.dir(), file, err)
		}
	}
	if len(c.h.controllers) == 0 {
		quota("cpu.max", fmt.Sprintf("%d 100000", quotaPct*1000))
	} else {
		quota("cpu.cfs_period_us", "100000")
		quota("cpu.cfs_quota_us", strconv.Itoa(quotaPct*1000))
	}
	return c
}

// startIn starts a sleeping process named name in the cgroup; it is killed
// when the test ends.
func startIn(t *testing.T, c cgroup, name string) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), name)
	b, err := os.ReadFile(sleep)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))
	cmd := exec.Command(bin, "3600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.NoError(t, os.WriteFile(filepath.Join(c.dir(), "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0))
	return cmd.Process.Pid
}

func procsOf(t *testing.T, c cgroup) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir(), "cgroup.procs"))
	require.NoError(t, err)
	out := strings.Fields(string(b))
	slices.Sort(out)
	return out
}

// cgroupFiles is every knob of the cgroup as it reads now, but for the
// member lists and the statistics, which a run changes by running.
func cgroupFiles(t *testing.T, c cgroup) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(c.dir())
	require.NoError(t, err)
	out := map[string]string{}
	for _, e := range ents {
		n := e.Name()
		if n == "cgroup.procs" || n == "tasks" || n == "cgroup.threads" || strings.Contains(n, "stat") || strings.Contains(n, "usage") || strings.Contains(n, "pressure") || strings.HasSuffix(n, ".events") || strings.Contains(n, "peak") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.dir(), n))
		if err == nil {
			out[n] = string(b)
		}
	}
	return out
}

// TestProcessTargetWorkersJoinItsCgroup: for a process target named by pid,
// by name and by cgroup path, the workers are in the target's cpu cgroup
// while the fault lives (the kernel's own /proc/PID/cgroup says so), use CPU
// there, and when it is reverted the cgroup holds what it held before, with
// every knob as it was.
func TestProcessTargetWorkersJoinItsCgroup(t *testing.T) {
	c := testCgroup(t, 20)
	name := fmt.Sprintf("cst-%06d", rand.IntN(1000000))
	pid := startIn(t, c, name)
	before, knobs := procsOf(t, c), cgroupFiles(t, c)

	for label, target := range map[string]sdk.ProcessTarget{"pid": {PID: pid}, "name": {Name: name}, "cgroup": {Cgroup: c.path}} {
		t.Run(label, func(t *testing.T) {
			f := New()
			req := sdk.Request{ID: "run/" + label, Target: sdk.Target{Name: "svc", Kind: sdk.KindProcess, Process: &target}, Params: json.RawMessage(`{"load":50,"workers":2}`)}
			require.Empty(t, f.Validate(t.Context(), req), "a live process in a cgroup root may join is a valid target")
			res, err := f.Resolve(t.Context(), req)
			require.NoError(t, err)
			require.Len(t, res.Things, 1)
			require.Contains(t, res.Things[0].Name, c.path, "the resolved thing names the cgroup the workers join")
			h, err := f.Inject(t.Context(), req)
			require.NoError(t, err)
			require.Contains(t, h, c.String(), "the handle, which the ledger keeps, says what was joined")

			ws := f.held[h].workers
			require.Len(t, ws, 2)
			for _, w := range ws {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", w.pid))
				require.NoError(t, err)
				require.Contains(t, string(b), ":"+c.path+"\n", "worker %d must be in the target's cgroup", w.pid)
				require.Contains(t, procsOf(t, c), strconv.Itoa(w.pid))
			}
			require.Eventually(t, func() bool { return ws[0].cpu() > 20*time.Millisecond }, 30*time.Second, 10*time.Millisecond, "the workers burn inside the cgroup")

			was, err := f.Revert(t.Context(), h)
			require.NoError(t, err)
			require.True(t, was)
			require.Equal(t, before, procsOf(t, c), "after the revert the cgroup holds what it held before")
			require.Equal(t, knobs, cgroupFiles(t, c), "the fault changes no knob of the cgroup")
		})
	}
}

// TestFreshPluginRevertsByIDInTheCgroup: a plugin that did not start the
// workers (as after `chaos recover`) finds them by their marker and kills
// them; the cgroup is left as it was.
func TestFreshPluginRevertsByIDInTheCgroup(t *testing.T) {
	c := testCgroup(t, 20)
	pid := startIn(t, c, "cst-fresh")
	before := procsOf(t, c)
	req := sdk.Request{ID: fmt.Sprintf("run-%d/fault-0", rand.Int64()), Target: sdk.Target{Name: "svc", Kind: sdk.KindProcess, Process: &sdk.ProcessTarget{PID: pid}}, Params: json.RawMessage(`{"load":10,"workers":3}`)}
	old := New()
	h, err := old.Inject(t.Context(), req)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = old.Revert(t.Context(), h) })
	require.Len(t, procsOf(t, c), len(before)+3, "three workers joined")

	was, err := New().RevertByID(t.Context(), req.ID)
	require.NoError(t, err)
	require.True(t, was, "the fresh plugin finds the workers by the id they carry")
	require.Equal(t, before, procsOf(t, c), "no worker is left in the cgroup")
	was, err = New().RevertByID(t.Context(), req.ID)
	require.NoError(t, err)
	require.False(t, was, "a second revert by id finds nothing")
}

// TestCgroupTheRunnerMayNotJoinIsInvalid: a user who may not write the
// target's cgroup.procs gets a problem at the target from Validate (and
// ErrCannotJoin from Resolve) before anything starts. The check runs in a
// copy of this test binary as nobody.
func TestCgroupTheRunnerMayNotJoinIsInvalid(t *testing.T) {
	if want := os.Getenv("CPUSTRESS_EXPECT_CANNOT_JOIN"); want != "" {
		req := sdk.Request{Target: sdk.Target{Name: "svc", Kind: sdk.KindProcess, Process: &sdk.ProcessTarget{Cgroup: want}}, Params: json.RawMessage(`{"load":50}`)}
		_, err := New().Resolve(t.Context(), req)
		require.ErrorIs(t, err, ErrCannotJoin)
		require.ErrorIs(t, err, sdk.ErrInvalidParams)
		probs := New().Validate(t.Context(), req)
		require.Len(t, probs, 1)
		require.Equal(t, "target", probs[0].Param)
		fmt.Println("PROBLEM:", probs[0].Message)
		return
	}
	c := testCgroup(t, 50)
	dir, err := os.MkdirTemp("", "cpustress-nobody-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	self, err := os.Executable()
	require.NoError(t, err)
	b, err := os.ReadFile(self)
	require.NoError(t, err)
	bin := filepath.Join(dir, "cpustress.test")
	require.NoError(t, os.WriteFile(bin, b, 0o755))
	cmd := exec.Command(bin, "-test.run", "^TestCgroupTheRunnerMayNotJoinIsInvalid$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CPUSTRESS_EXPECT_CANNOT_JOIN="+c.path)
	cmd.SysProcAttr = nobody()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "as nobody, the cgroup must be refused with ErrCannotJoin:\n%s", out)
	require.True(t, bytes.Contains(out, []byte("PROBLEM:")), "the child must have checked:\n%s", out)
	t.Logf("%s", bytes.TrimSpace(out))
}
