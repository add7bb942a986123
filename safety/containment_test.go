package safety_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/safety"
)

// neighbourUID is the uid tests give files "another local user" made.
const neighbourUID = 65534

// requireRoot skips tests that chown files to another user.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files of another user")
	}
}

// victim is a file of the running user's outside the state directory, the
// target a neighbour's symlink points at.
func victim(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "precious")
	require.NoError(t, os.WriteFile(path, []byte("precious content\n"), 0o600))
	return path
}

func requireUntouched(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "precious content\n", string(data), "the file a planted symlink points at must be neither truncated nor written")
}

func requireUnsafe(t *testing.T, err error, path, fix string) {
	t.Helper()
	require.ErrorIs(t, err, safety.ErrUnsafeStateDir, "an unsafe state directory is refused")
	var ue *safety.UnsafePathError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, path, ue.Path, "the refusal names the path at fault")
	require.Contains(t, ue.Fix, fix, "the refusal says how to fix it")
}

func TestStateDirWritableByOthersIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))

	requireUnsafe(t, safety.EnsureStateDir(dir), dir, "chmod go-w")
	_, err := safety.OpenLedger(dir)
	requireUnsafe(t, err, dir, "chmod go-w")
	_, err = safety.LockTargets(dir, []string{"k"}, "run")
	requireUnsafe(t, err, dir, "chmod go-w")
	requireUnsafe(t, safety.Engage(dir, "x"), dir, "chmod go-w")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing is created in a refused directory")
}

func TestStateDirIsCreatedPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "chaos")
	l, err := safety.OpenLedger(dir)
	require.NoError(t, err)
	_, err = safety.LockTargets(dir, []string{"k"}, "run")
	require.NoError(t, err)
	_ = l
	for _, sub := range []string{"", "ledger", "ledger/done", "locks"} {
		fi, err := os.Lstat(filepath.Join(dir, sub))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "%s/%s is created 0700", dir, sub)
	}
}

// TestNeighbourStateDirIsRefused is the attack: another user pre-creates a
// world-writable state directory with a lock file that is a symlink to a
// file of the victim's. The victim's run must refuse it and leave the file
// alone.
func TestNeighbourStateDirIsRefused(t *testing.T) {
	requireRoot(t)
	target := victim(t)
	dir := filepath.Join(t.TempDir(), "chaos")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Symlink(target, filepath.Join(dir, "ledger.lock")))
	require.NoError(t, os.Lchown(filepath.Join(dir, "ledger.lock"), neighbourUID, neighbourUID))
	require.NoError(t, os.Chown(dir, neighbourUID, neighbourUID))

	_, err := safety.OpenLedger(dir)
	requireUnsafe(t, err, dir, "chown")
	require.Contains(t, err.Error(), "owned by uid 65534", "the message says whose it is")
	_, err = safety.LockTargets(dir, []string{"k"}, "run")
	requireUnsafe(t, err, dir, "chown")
	requireUntouched(t, target)
}

func TestSubdirectoriesAreChecked(t *testing.T) {
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		elsewhere := t.TempDir()
		require.NoError(t, os.Symlink(elsewhere, filepath.Join(dir, "locks")))
		_, err := safety.LockTargets(dir, []string{"k"}, "run")
		requireUnsafe(t, err, filepath.Join(dir, "locks"), "directory of your own")
		entries, _ := os.ReadDir(elsewhere)
		require.Empty(t, entries, "nothing is written where the link points")
	})
	t.Run("writable", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o700))
		require.NoError(t, os.Chmod(filepath.Join(dir, "ledger"), 0o775))
		_, err := safety.OpenLedger(dir)
		requireUnsafe(t, err, filepath.Join(dir, "ledger"), "chmod go-w")
	})
	t.Run("other owner", func(t *testing.T) {
		requireRoot(t)
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "ledger", "done"), 0o700))
		require.NoError(t, os.Chown(filepath.Join(dir, "ledger", "done"), neighbourUID, neighbourUID))
		_, err := safety.OpenLedger(dir)
		requireUnsafe(t, err, filepath.Join(dir, "ledger", "done"), "chown")
	})
}

// TestPlantedSymlinksAreNotFollowed plants symlinks to a file of the
// user's in places of files chaos opens, in a directory that passes the
// checks (as if planted before it was made private). None is followed.
func TestPlantedSymlinksAreNotFollowed(t *testing.T) {
	target := victim(t)
	dir := t.TempDir()
	l := openLedger(t, dir)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "locks"), 0o700))
	sum := sha256.Sum256([]byte("endpoint:a"))
	lockFile := filepath.Join(dir, "locks", hex.EncodeToString(sum[:])[:16]+".lock")
	require.NoError(t, os.Symlink(target, lockFile))

	_, err := safety.LockTargets(dir, []string{"endpoint:a"}, "run")
	requireUnsafe(t, err, lockFile, "rm")
	requireUntouched(t, target)

	require.NoError(t, os.Symlink(target, filepath.Join(dir, "ledger.lock")))
	err = l.Intend(entry("run1", "fault-0", "endpoint:b"))
	requireUnsafe(t, err, filepath.Join(dir, "ledger.lock"), "rm")
	requireUntouched(t, target)
	require.NoError(t, os.Remove(filepath.Join(dir, "ledger.lock")))

	// An entry that is a symlink is unreadable, never followed.
	require.NoError(t, os.Symlink(target, filepath.Join(dir, "ledger", "run9%2Ffault-0.json")))
	_, bad, err := l.Read()
	require.NoError(t, err)
	require.Len(t, bad, 1, "the symlinked entry is named as unreadable")
	require.ErrorIs(t, bad[0], safety.ErrUnsafeStateDir)

	// A symlinked kill switch engages (its presence counts) but its target
	// is not read.
	require.NoError(t, os.Symlink(target, filepath.Join(dir, "abort")))
	reason, engaged, err := safety.Engaged(dir)
	require.NoError(t, err)
	require.True(t, engaged, "an abort file is there, whatever it is")
	require.NotContains(t, reason, "precious", "the link's target is not read")
	requireUntouched(t, target)
}

func TestLedgerReadNamesUnreadableFilesAndReturnsTheRest(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:a")))
	garbage := filepath.Join(dir, "ledger", "garbage.json")
	require.NoError(t, os.WriteFile(garbage, []byte("\x00not json"), 0o600))

	open, bad, err := l.Read()
	require.NoError(t, err, "a bad file does not make the ledger unreadable")
	require.Len(t, open, 1, "the readable entry is returned")
	require.Len(t, bad, 1)
	require.Equal(t, garbage, bad[0].Path, "the unreadable file is named")
	require.ErrorIs(t, bad[0], safety.ErrCorruptEntry)
	require.Contains(t, bad[0].Error(), "chaos recover --discard "+garbage, "the error says what to do")

	_, err = l.OpenFor([]string{"endpoint:z"})
	require.ErrorIs(t, err, safety.ErrCorruptEntry, "a run refuses to start: the unreadable file may be a fault on its target")
}

func TestDiscard(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:a")))
	garbage := filepath.Join(dir, "ledger", "garbage.json")
	require.NoError(t, os.WriteFile(garbage, []byte("{"), 0o600))
	outside := victim(t)

	for name, path := range map[string]string{
		"outside":        outside,
		"done":           filepath.Join(dir, "ledger", "done", "x.json"),
		"dotdot":         filepath.Join(dir, "ledger", "..", "ledger.lock"),
		"ledger itself":  filepath.Join(dir, "ledger"),
		"relative above": "../../../etc/passwd",
	} {
		_, err := l.Discard(path)
		require.ErrorIs(t, err, safety.ErrNotInLedger, "%s: only files directly in the ledger directory can be discarded", name)
	}
	requireUntouched(t, outside)
	_, err := l.Discard(filepath.Join(dir, "ledger", "run1%2Ffault-0.json"))
	require.ErrorIs(t, err, safety.ErrEntryReadable, "a readable open entry is reverted by recover, never discarded")

	dest, err := l.Discard(garbage)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "ledger", "discarded"), filepath.Dir(dest), "the file is set aside in ledger/discarded")
	require.NoFileExists(t, garbage)
	data, err := os.ReadFile(dest)
	require.NoError(t, err)
	require.Equal(t, "{", string(data), "the file is kept as it was")
	var note map[string]any
	raw, err := os.ReadFile(dest + ".note.json")
	require.NoError(t, err, "a note beside it says why")
	require.NoError(t, json.Unmarshal(raw, &note))
	require.Contains(t, note["why"], "chaos recover --discard")

	open, err := l.Open()
	require.NoError(t, err, "once set aside, the file no longer stops anything")
	require.Len(t, open, 1)
}

func TestLedgerKeepsNoSecret(t *testing.T) {
	dir := t.TempDir()
	const secret = `p"a\ss<w>&rd-1234567890`
	l, err := safety.OpenLedger(dir, safety.WithRedact(func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") }))
	require.NoError(t, err)
	e := entry("run1", "fault-0", "endpoint:a")
	e.Experiment = "exp " + secret
	require.NoError(t, l.Intend(e))
	require.NoError(t, l.Note(e.ID, "not injected: bad delay "+secret))
	require.NoError(t, l.Reverted(e.ID))
	escaped, _ := json.Marshal(secret)
	requireNoSecretUnder(t, dir, secret, string(escaped[1:len(escaped)-1]))
}

// requireNoSecretUnder reads every file under dir and fails if one holds
// the secret, its JSON-escaped form or any 8-byte piece of it.
func requireNoSecretUnder(t *testing.T, dir, secret, escaped string) {
	t.Helper()
	pieces := []string{secret, escaped}
	for i := 0; i+8 <= len(secret); i++ {
		pieces = append(pieces, secret[i:i+8])
	}
	n := 0
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		n++
		for _, p := range pieces {
			require.NotContains(t, string(data), p, "%s must hold no part of the secret", path)
		}
		return nil
	}))
	require.NotZero(t, n, "the state directory holds files to check")
}

func TestStopProcess(t *testing.T) {
	t.Run("ends on SIGTERM, even when stopped", func(t *testing.T) {
		cmd := startHelper(t, "idle")
		pid := cmd.Process.Pid
		start, err := safety.ProcessStart(pid)
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP), "a stopped plugin (SIGSTOP, a debugger) does not act on SIGTERM until continued")
		res, err := safety.StopProcess(context.Background(), pid, start, time.Minute)
		require.NoError(t, err)
		require.Equal(t, safety.Terminated, res, "SIGCONT lets the SIGTERM act; no SIGKILL needed")
		require.False(t, safety.IsProcess(pid, start))
		_ = cmd.Wait()
	})
	t.Run("SIGKILL after the grace", func(t *testing.T) {
		cmd := startHelper(t, "ignoreterm")
		pid := cmd.Process.Pid
		start, err := safety.ProcessStart(pid)
		require.NoError(t, err)
		res, err := safety.StopProcess(context.Background(), pid, start, 50*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, safety.Killed, res, "a process that ignores SIGTERM is killed")
		err = cmd.Wait()
		require.Error(t, err)
		require.Equal(t, syscall.SIGKILL, cmd.ProcessState.Sys().(syscall.WaitStatus).Signal())
	})
	t.Run("a recycled pid is spared", func(t *testing.T) {
		cmd := startHelper(t, "idle")
		pid := cmd.Process.Pid
		start, err := safety.ProcessStart(pid)
		require.NoError(t, err)
		res, err := safety.StopProcess(context.Background(), pid, start+1, time.Minute)
		require.NoError(t, err)
		require.Equal(t, safety.AlreadyGone, res, "another start time is another process")
		_, err = safety.StopProcess(context.Background(), pid, 0, time.Minute)
		require.Error(t, err, "an unknown start time cannot be told from a recycled pid")
		require.True(t, safety.IsProcess(pid, start), "the process with the reused pid is untouched")
	})
}

func TestRunnerAlive(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	cmd := startHelper(t, "lock", dirEnv+"="+dir, runEnv+"=run-child", keysEnv+"=endpoint:a")
	e := safety.Entry{ID: "run-child/fault-0", RunID: "run-child", TargetKey: "endpoint:a", RunnerPID: cmd.Process.Pid}
	alive, why := l.RunnerAlive(e)
	require.True(t, alive, "the run holds its target's lock: %s", why)
	killHelper(t, cmd)
	alive, why = l.RunnerAlive(e)
	require.False(t, alive, "the lock of a dead run is free: %s", why)

	// Without a lock file: pid and start time.
	self, err := safety.ProcessStart(os.Getpid())
	require.NoError(t, err)
	e = safety.Entry{RunID: "r", TargetKey: "endpoint:nolock", RunnerPID: os.Getpid(), RunnerStart: self}
	alive, _ = l.RunnerAlive(e)
	require.True(t, alive, "a live runner with its start time is alive")
	e.RunnerStart = self + 1
	alive, _ = l.RunnerAlive(e)
	require.False(t, alive, "a pid with another start time is not the runner")
}
