package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/safety"
)

// TestStoppedOrphanedPluginRevertsByItself stops the plugin mid-fault
// (SIGSTOP: it answers nothing and acts on no signal but SIGKILL and
// SIGCONT), then kills the runner. The plugin runs in a process group of its
// own, so the runner's death orphans that group with a stopped member, and
// the kernel sends it SIGHUP and SIGCONT (POSIX orphaned process groups):
// the plugin wakes, reverts and exits by itself, with nobody left to renew
// or ask. `chaos recover` then finds the plugin gone and closes the entry.
// (recover's own escalation, SIGCONT + SIGTERM and SIGKILL after a grace,
// for a plugin that is alive but not answering, is tested on real
// processes in safety's TestStopProcess.)
func TestStoppedOrphanedPluginRevertsByItself(t *testing.T) {
	tg := startTarget(t, "-timeout", "5s")
	exp := writeExperiment(t, tg, experimentOpts{name: "recover-stopped"})
	stateDir := t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
	waitInjected(t, run, stateDir)
	pl := pluginOf(t, run)
	require.NoError(t, syscall.Kill(pl.pid, syscall.SIGSTOP), "stop the plugin mid-fault")
	t.Cleanup(func() { _ = syscall.Kill(pl.pid, syscall.SIGKILL) })
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL), "kill the runner")
	run.exitCode(t)
	requireKilled(t, run)
	require.True(t, poll(waitLimit, func() bool { return len(pluginsOfRun(t, run)) == 0 }),
		"the stopped plugin, orphaned, is woken by the kernel and exits after reverting")
	requireRefused(t, tg.proxy)

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir, "--grace", "2s")
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover closes what the woken plugin reverted\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	require.Empty(t, openEntries(t, stateDir), "recover leaves the ledger clean")
}

// TestRecoverChecksThePluginOfAnEntryWithoutHandle writes entries whose
// runner died before the plugin answered. recover must look at the
// entry's plugin process by pid and start time: a live one is ended before
// the entry is closed, and a process that merely has the pid (another
// start time) is left alone.
func TestRecoverChecksThePluginOfAnEntryWithoutHandle(t *testing.T) {
	stateDir := t.TempDir()
	l, err := safety.OpenLedger(stateDir)
	require.NoError(t, err)
	dead := exec.Command("true")
	require.NoError(t, dead.Run(), "a runner that has ended")
	plugin := startSleeper(t)
	other := startSleeper(t)
	otherStart, err := safety.ProcessStart(other.Process.Pid)
	require.NoError(t, err)

	require.NoError(t, l.Intend(safety.Entry{ID: "r1/fault-0", RunID: "r1", Plugin: "latency", TargetKey: "endpoint:127.0.0.1:1",
		RunnerPID: dead.Process.Pid, PluginPID: plugin.Process.Pid}))
	require.NoError(t, l.Intend(safety.Entry{ID: "r1/fault-1", RunID: "r1", Plugin: "latency", TargetKey: "endpoint:127.0.0.1:2",
		RunnerPID: dead.Process.Pid, PluginPID: other.Process.Pid, PluginStart: otherStart + 1}))

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	out := rec.stdout.String()
	require.Contains(t, out, "closed r1/fault-0", out)
	require.Contains(t, out, "was still running and exited on SIGTERM", "the entry's live plugin is ended before the entry is closed\n%s", out)
	err = plugin.Wait()
	require.Error(t, err)
	require.Equal(t, syscall.SIGTERM, plugin.ProcessState.Sys().(syscall.WaitStatus).Signal(), "the plugin got SIGTERM, so it could revert")
	require.Contains(t, out, "closed r1/fault-1", out)
	require.True(t, safety.IsProcess(other.Process.Pid, otherStart), "a process that only shares the plugin's pid is never signalled")
	require.Empty(t, openEntries(t, stateDir))
}

func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// TestNoSecretInStateDir runs a fault whose parameter is a secret from the
// environment, then reads every file of the state directory (done/
// included): none holds the secret, its JSON-escaped form or any 8-byte
// piece of it.
func TestNoSecretInStateDir(t *testing.T) {
	const secret = "1234567us" // the latency fault takes a duration
	t.Setenv("CHAOS_E2E_SECRET", secret)
	tg := startTarget(t, "-timeout", "5s")
	exp := writeExperiment(t, tg, experimentOpts{name: "secret-param", delay: `"${env:CHAOS_E2E_SECRET}"`, faultFor: "1s"})
	stateDir := t.TempDir()

	run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
	code := run.exitCode(t)
	require.Containsf(t, []int{0, 1}, code, "the run ends with a verdict\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	done, err := filepath.Glob(filepath.Join(stateDir, "ledger", "done", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, done, "the run's entries are in done/")

	pieces := []string{secret}
	for i := 0; i+8 <= len(secret); i++ {
		pieces = append(pieces, secret[i:i+8])
	}
	require.NoError(t, filepath.WalkDir(stateDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, p := range pieces {
			require.NotContains(t, string(data), p, "%s holds (part of) the secret", path)
		}
		return nil
	}))
}

// TestNeighbourStateDirIsRefusedByTheBinary is the neighbour's trap:
// another user's world-writable state directory with a lock file that is a
// symlink to root's file. root's `chaos run` refuses, says which path and
// how to fix it, and the file is untouched.
func TestNeighbourStateDirIsRefusedByTheBinary(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory of another user")
	}
	victim := filepath.Join(t.TempDir(), "precious")
	require.NoError(t, os.WriteFile(victim, []byte("precious\n"), 0o600))
	stateDir := filepath.Join(t.TempDir(), "chaos")
	require.NoError(t, os.Mkdir(stateDir, 0o700))
	require.NoError(t, os.Symlink(victim, filepath.Join(stateDir, "ledger.lock")))
	require.NoError(t, os.Chown(stateDir, 65534, 65534))
	require.NoError(t, os.Chmod(stateDir, 0o777))
	exp := writeExperiment(t, target{front: freeAddr(t), backend: freeAddr(t), proxy: freeAddr(t)}, experimentOpts{name: "neighbour"})

	run := start(t, built.chaos, "run", "--state-dir", stateDir, exp.File)
	require.Equalf(t, 5, run.exitCode(t), "refused\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	msg := run.stderr.String()
	require.Contains(t, msg, stateDir+" is owned by uid 65534", "the refusal names the path and whose it is")
	require.True(t, strings.Contains(msg, "chown") && strings.Contains(msg, "--state-dir"), "the refusal says how to fix it: %s", msg)
	data, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, "precious\n", string(data), "the file the planted symlink points at is untouched")
}
