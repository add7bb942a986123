// These tests are internal to package safety because they choose between
// the inotify watch and the poll fallback, and need to know when the watch
// is in place; everything else they use is the exported API.
package safety

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wait is how long a test waits for an event that should come at once. It
// bounds a hang; it is not a claim about speed.
const wait = 10 * time.Second

// Only inotify can see these: the poll fallback and the re-check are
// effectively off.
func inotifyOnly() watchConfig {
	return watchConfig{inotify: true, poll: time.Hour, recheck: time.Hour}
}

// watching is one Watch running in a goroutine the test owns.
type watching struct {
	fired  chan error
	done   chan error
	cancel context.CancelFunc
}

// startWatch runs watch on dir. With waitReady it returns once the watch
// is in place and found the switch off.
func startWatch(t *testing.T, dir string, cfg watchConfig, waitReady bool) *watching {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watching{fired: make(chan error, 10), done: make(chan error, 1), cancel: cancel}
	ready := make(chan struct{})
	cfg.ready = func() { close(ready) }
	go func() { w.done <- watch(ctx, dir, func(err error) { w.fired <- err }, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	if waitReady {
		select {
		case <-ready:
		case err := <-w.done:
			t.Fatalf("watch returned before it was ready: %v", err)
		case <-time.After(wait):
			t.Fatal("the watch never became ready")
		}
	}
	return w
}

// requireFired waits for the abort and checks its cause.
func (w *watching) requireFired(t *testing.T, reason string) {
	t.Helper()
	select {
	case err := <-w.fired:
		require.ErrorIs(t, err, ErrKillSwitch, "the cause must say it was the kill switch")
		var ks *KillSwitchError
		require.ErrorAs(t, err, &ks)
		require.Equal(t, reason, ks.Reason, "the cause carries the reason given to chaos abort")
	case <-time.After(wait):
		t.Fatal("the kill switch was engaged but the watch never called abort")
	}
}

// stop cancels the watch, waits for it to return and checks abort was not
// called (again).
func (w *watching) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		require.NoError(t, err, "a watch ended by its context returns nil")
	case <-time.After(wait):
		t.Fatal("the watch did not return after its context was cancelled")
	}
	w.done <- nil // for the cleanup
	require.Empty(t, w.fired, "abort must be called at most once, and never after a cancel")
}

func TestEngagedAndClear(t *testing.T) {
	dir := t.TempDir()
	_, engaged, err := Engaged(dir)
	require.NoError(t, err)
	require.False(t, engaged, "a fresh state directory has no kill switch")

	require.NoError(t, Engage(dir, "payments incident"))
	reason, engaged, err := Engaged(dir)
	require.NoError(t, err)
	require.True(t, engaged)
	require.Equal(t, "payments incident", reason)
	fi, err := os.Stat(filepath.Join(dir, "abort"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	require.NoError(t, Clear(dir))
	_, engaged, err = Engaged(dir)
	require.NoError(t, err)
	require.False(t, engaged, "Clear disengages the switch")
	require.NoError(t, Clear(dir), "Clear is idempotent")
}

func TestEngagedByHand(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "abort"), []byte("db failover in progress\n"), 0o600))
	reason, engaged, err := Engaged(dir)
	require.NoError(t, err)
	require.True(t, engaged, "a file written by hand is a kill switch too")
	require.Equal(t, "db failover in progress", reason)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "abort"), nil, 0o600))
	reason, engaged, err = Engaged(dir)
	require.NoError(t, err)
	require.True(t, engaged, "an empty file (touch) engages the switch")
	require.NotEmpty(t, reason, "there is always a reason to show")
}

func TestWatchFiresOnEngageFromAnotherGoroutine(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, inotifyOnly(), true)
	engaged := make(chan error, 1)
	go func() { engaged <- Engage(dir, "stop everything") }()
	w.requireFired(t, "stop everything")
	require.NoError(t, <-engaged)

	require.NoError(t, Clear(dir))
	require.NoError(t, Engage(dir, "again"))
	w.stop(t)
}

func TestWatchFiresOnEngageFromAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, inotifyOnly(), true)

	// The test binary as `chaos abort`; main_test.go's TestMain runs the
	// helper these variables name.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(),
		"CHAOS_SAFETY_TEST_HELPER=engage",
		"CHAOS_SAFETY_TEST_DIR="+dir,
		"CHAOS_SAFETY_TEST_REASON=game day over",
		// The race detector otherwise sleeps a second before the helper exits.
		"GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the engaging process must succeed: %s", out)

	w.requireFired(t, "game day over")
	w.stop(t)
}

func TestWatchFiresWhenAlreadyEngaged(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Engage(dir, "engaged before the run"))

	ctx, cancel := context.WithCancel(t.Context())
	fired := make(chan error, 10)
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, dir, func(err error) { fired <- err }) }()

	select {
	case err := <-fired:
		require.ErrorIs(t, err, ErrKillSwitch)
	case <-time.After(wait):
		t.Fatal("a switch engaged before the watch started must fire")
	}
	cancel()
	require.NoError(t, <-done, "Watch returns nil once its context ends")
	require.Empty(t, fired, "abort is called once")
}

func TestWatchReturnsOnCancelWithoutFiring(t *testing.T) {
	for name, cfg := range map[string]watchConfig{
		"inotify": inotifyOnly(),
		"poll":    {poll: time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w := startWatch(t, dir, cfg, true)

			// Other traffic in the state directory is not an abort.
			l, err := OpenLedger(dir)
			require.NoError(t, err)
			require.NoError(t, l.Intend(Entry{ID: "r/f", RunID: "r", Plugin: "p", TargetKey: "k"}))
			lk, err := LockTargets(dir, []string{"k"}, "r")
			require.NoError(t, err)
			require.NoError(t, lk.Release())
			require.NoError(t, os.WriteFile(filepath.Join(dir, "aborted"), []byte("x"), 0o600))

			w.stop(t)
		})
	}
}

func TestWatchPollFallback(t *testing.T) {
	dir := t.TempDir()
	w := startWatch(t, dir, watchConfig{poll: time.Millisecond}, true)
	require.NoError(t, Engage(dir, "polled"))
	w.requireFired(t, "polled")
	w.stop(t)
}

func TestWatchFallsBackWhenTheDirectoryIsReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	w := startWatch(t, dir, watchConfig{inotify: true, poll: time.Millisecond, recheck: time.Hour}, true)

	// The inotify watch dies with the directory; a new directory at the
	// same path is only seen by polling.
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, Engage(dir, "new directory"))
	w.requireFired(t, "new directory")
	w.stop(t)
}
