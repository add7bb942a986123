package safety_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/safety"
)

func TestLockConflictAndRelease(t *testing.T) {
	dir := t.TempDir()
	a, err := safety.LockTargets(dir, []string{"endpoint:b", "endpoint:a", "endpoint:a"}, "run-a")
	require.NoError(t, err, "a free target locks, and a duplicate key does not lock against itself")

	_, err = safety.LockTargets(dir, []string{"endpoint:a"}, "run-b")
	require.ErrorIs(t, err, safety.ErrTargetLocked, "a second run must not fault a locked target")
	var locked *safety.LockedError
	require.ErrorAs(t, err, &locked)
	require.Equal(t, "endpoint:a", locked.Key, "the refusal names the target")
	require.Equal(t, "run-a", locked.RunID, "the refusal names the run that holds it")
	require.Equal(t, os.Getpid(), locked.PID)

	c, err := safety.LockTargets(dir, []string{"pod:c"}, "run-b")
	require.NoError(t, err, "other targets stay free")
	require.NoError(t, c.Release())

	require.NoError(t, a.Release())
	require.NoError(t, a.Release(), "Release is idempotent")
	b, err := safety.LockTargets(dir, []string{"endpoint:a", "endpoint:b"}, "run-b")
	require.NoError(t, err, "released targets can be locked again")
	require.NoError(t, b.Release())
}

func TestLockConflictReleasesWhatItTook(t *testing.T) {
	dir := t.TempDir()
	a, err := safety.LockTargets(dir, []string{"k2"}, "run-a")
	require.NoError(t, err)
	defer a.Release()

	_, err = safety.LockTargets(dir, []string{"k1", "k2", "k3"}, "run-b")
	var locked *safety.LockedError
	require.ErrorAs(t, err, &locked)
	require.Equal(t, "k2", locked.Key)

	c, err := safety.LockTargets(dir, []string{"k1", "k3"}, "run-c")
	require.NoError(t, err, "a refused run must give back the keys it had already taken")
	require.NoError(t, c.Release())
}

func TestLockOfKilledRunnerIsFree(t *testing.T) {
	dir := t.TempDir()
	cmd := startHelper(t, "lock", dirEnv+"="+dir, runEnv+"=run-child", keysEnv+"=endpoint:a,endpoint:b")

	_, err := safety.LockTargets(dir, []string{"endpoint:b"}, "run-parent")
	var locked *safety.LockedError
	require.ErrorAs(t, err, &locked, "the child process holds the target")
	require.ErrorIs(t, err, safety.ErrTargetLocked)
	require.Equal(t, "run-child", locked.RunID)
	require.Equal(t, cmd.Process.Pid, locked.PID, "the refusal names the holder's pid")

	killHelper(t, cmd)

	l, err := safety.LockTargets(dir, []string{"endpoint:a", "endpoint:b"}, "run-parent")
	require.NoError(t, err, "the kernel releases a SIGKILLed runner's locks: a dead run must never block a target")
	require.NoError(t, l.Release())
}

func TestLockFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	l, err := safety.LockTargets(dir, []string{"endpoint:a"}, "run-a")
	require.NoError(t, err)
	defer l.Release()
	files, err := filepath.Glob(filepath.Join(dir, "locks", "*.lock"))
	require.NoError(t, err)
	require.Len(t, files, 1, "one lock file per key")
	require.Len(t, filepath.Base(files[0]), len("0123456789abcdef.lock"), "named by 16 hex digits of the key's hash")
	fi, err := os.Stat(files[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestLockRefusesEmptyKey(t *testing.T) {
	_, err := safety.LockTargets(t.TempDir(), []string{""}, "run-a")
	require.Error(t, err, "an empty key would lock nothing meaningful")
}
