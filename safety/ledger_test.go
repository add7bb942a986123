package safety_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/safety"
)

func entry(run, key, target string) safety.Entry {
	return safety.Entry{
		ID: run + "/" + key, RunID: run, Plugin: "latency", TargetKey: target,
		LeaseTTL:   10 * time.Second,
		Experiment: "checkout-latency", File: "checkout-latency.yaml",
	}
}

func openLedger(t *testing.T, dir string) *safety.Ledger {
	t.Helper()
	l, err := safety.OpenLedger(dir)
	require.NoError(t, err, "the ledger must open in a fresh state directory")
	return l
}

func TestLedgerIntentIsOpen(t *testing.T) {
	l := openLedger(t, t.TempDir())
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:127.0.0.1:8080")))

	open, err := l.Open()
	require.NoError(t, err)
	require.Len(t, open, 1, "an intent is open: the inject may have happened")
	e := open[0]
	require.Equal(t, "run1/fault-0", e.ID)
	require.Equal(t, safety.StateIntent, e.State)
	require.Equal(t, os.Getpid(), e.RunnerPID, "the runner pid defaults to the writer, so recover can tell a dead run")
	require.Equal(t, "endpoint:127.0.0.1:8080", e.TargetKey, "the target's identity round-trips")
	start, err := safety.ProcessStart(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, start, e.RunnerStart, "the runner's start time is recorded, so a recycled pid is not taken for it")
	require.Equal(t, 10*time.Second, e.LeaseTTL)
	require.Equal(t, "checkout-latency", e.Experiment)
	require.False(t, e.CreatedAt.IsZero(), "CreatedAt is set when the caller leaves it zero")
	require.Empty(t, e.Handle, "no handle before the inject")
}

func TestLedgerTransitions(t *testing.T) {
	l := openLedger(t, t.TempDir())
	e := entry("run1", "fault-0", "endpoint:a")
	require.NoError(t, l.Intend(e))
	require.ErrorIs(t, l.Intend(e), safety.ErrEntryExists, "an open entry must not be overwritten: it may stand for a live fault")

	require.NoError(t, l.Injected(e.ID, "h-42"))
	open, err := l.Open()
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, safety.StateInjected, open[0].State)
	require.Equal(t, "h-42", open[0].Handle, "recover reverts by this handle")

	require.NoError(t, l.Note(e.ID, "revert failed: plugin exited"))
	open, err = l.Open()
	require.NoError(t, err)
	require.Equal(t, "revert failed: plugin exited", open[0].Note)
	require.Equal(t, "h-42", open[0].Handle, "a note must not lose the handle")

	require.NoError(t, l.Reverted(e.ID))
	open, err = l.Open()
	require.NoError(t, err)
	require.Empty(t, open, "a reverted entry is not open")
	require.NoError(t, l.Reverted(e.ID), "reverting twice is fine, so recover can be rerun")
	require.NoError(t, l.Note(e.ID, "history"), "a reverted entry can still take a note")
	require.ErrorIs(t, l.Injected(e.ID, "h-43"), safety.ErrNoEntry, "a reverted entry cannot become live again")

	require.NoError(t, l.Intend(e), "the ID of a reverted entry may be used again")
	open, err = l.Open()
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, safety.StateIntent, open[0].State)
	require.Empty(t, open[0].Handle)
}

func TestLedgerRevertedStraightFromIntent(t *testing.T) {
	// The engine closes an entry without Injected when the plugin refused
	// the inject.
	l := openLedger(t, t.TempDir())
	e := entry("run1", "fault-0", "endpoint:a")
	require.NoError(t, l.Intend(e))
	require.NoError(t, l.Reverted(e.ID))
	open, err := l.Open()
	require.NoError(t, err)
	require.Empty(t, open)
}

func TestLedgerUnknownEntry(t *testing.T) {
	l := openLedger(t, t.TempDir())
	require.ErrorIs(t, l.Injected("run1/nope", "h"), safety.ErrNoEntry)
	require.ErrorIs(t, l.Reverted("run1/nope"), safety.ErrNoEntry)
	require.ErrorIs(t, l.Note("run1/nope", "x"), safety.ErrNoEntry)
}

func TestLedgerRefusesEntriesRecoverCouldNotUse(t *testing.T) {
	l := openLedger(t, t.TempDir())
	for name, e := range map[string]safety.Entry{
		"no id":         {RunID: "r", Plugin: "p", TargetKey: "k"},
		"id not of run": {ID: "other/fault-0", RunID: "r", Plugin: "p", TargetKey: "k"},
		"no fault key":  {ID: "r/", RunID: "r", Plugin: "p", TargetKey: "k"},
		"no plugin":     {ID: "r/fault-0", RunID: "r", TargetKey: "k"},
		"no target key": {ID: "r/fault-0", RunID: "r", Plugin: "p"},
		"no run id":     {ID: "/fault-0", Plugin: "p", TargetKey: "k"},
	} {
		require.Error(t, l.Intend(e), "%s: the entry must be refused before anything is injected", name)
	}
	open, err := l.Open()
	require.NoError(t, err)
	require.Empty(t, open, "a refused entry leaves nothing behind")
}

func TestLedgerOpenIsSortedByCreation(t *testing.T) {
	l := openLedger(t, t.TempDir())
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		key string
		at  time.Time
	}{{"fault-2", t0.Add(time.Second)}, {"fault-1", t0}, {"fault-0", t0.Add(time.Second)}} {
		e := entry("run1", c.key, "endpoint:a")
		e.CreatedAt = c.at
		require.NoError(t, l.Intend(e))
	}
	open, err := l.Open()
	require.NoError(t, err)
	var ids []string
	for _, e := range open {
		ids = append(ids, e.ID)
	}
	require.Equal(t, []string{"run1/fault-1", "run1/fault-0", "run1/fault-2"}, ids, "oldest first, then by ID")
}

func TestLedgerOpenFor(t *testing.T) {
	l := openLedger(t, t.TempDir())
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:a")))
	require.NoError(t, l.Intend(entry("run1", "fault-1", "endpoint:b")))
	require.NoError(t, l.Intend(entry("run2", "fault-0", "pod:c")))
	require.NoError(t, l.Reverted("run2/fault-0"))

	got, err := l.OpenFor([]string{"endpoint:b", "pod:c", "endpoint:z"})
	require.NoError(t, err)
	require.Len(t, got, 1, "only open entries on the given targets")
	require.Equal(t, "run1/fault-1", got[0].ID)

	got, err = l.OpenFor(nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestLedgerReportsCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLedger(t, dir)
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:a")))
	bad := filepath.Join(dir, "ledger", "run9%2Ffault-0.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"id": "run9/fault-0", "state": "inj`), 0o600))
	// A temporary file of a write that never finished is not an entry.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ledger", ".tmp-run8%2Ffault-0.json-123"), []byte(`{"id`), 0o600))

	open, err := l.Open()
	require.ErrorIs(t, err, safety.ErrCorruptEntry, "a corrupt file may stand for a live fault and must not be skipped silently")
	require.ErrorContains(t, err, bad, "the error names the file so a person can look at it")
	require.Len(t, open, 1, "the readable entries are still returned, so recover can act on them")

	_, err = l.OpenFor([]string{"endpoint:a"})
	require.ErrorIs(t, err, safety.ErrCorruptEntry, "a run must not start while the ledger cannot be read in full")

	e := entry("run9", "fault-0", "endpoint:a")
	require.ErrorIs(t, l.Intend(e), safety.ErrCorruptEntry, "an unreadable entry must not be overwritten")
}

func TestLedgerSharedByTwoRunners(t *testing.T) {
	dir := t.TempDir()
	a, b := openLedger(t, dir), openLedger(t, dir)

	const per = 20
	var wg sync.WaitGroup
	for i, l := range []*safety.Ledger{a, b} {
		wg.Go(func() {
			run := "run" + strconv.Itoa(i)
			for j := range per {
				e := entry(run, fmt.Sprintf("fault-%d", j), "endpoint:"+run)
				if err := l.Intend(e); err != nil {
					t.Error(err)
					return
				}
				if err := l.Injected(e.ID, "h"); err != nil {
					t.Error(err)
					return
				}
				if j%2 == 0 {
					if err := l.Reverted(e.ID); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := l.Open(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	for name, l := range map[string]*safety.Ledger{"a": a, "b": b} {
		open, err := l.Open()
		require.NoError(t, err)
		require.Len(t, open, per, "runner %s must see the open entries of both runners", name)
		for _, e := range open {
			require.Equal(t, safety.StateInjected, e.State)
		}
	}
}

func TestLedgerIntentSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd := startHelper(t, "intend", dirEnv+"="+dir, runEnv+"=dead-run", keysEnv+"=endpoint:127.0.0.1:1")
	pid := cmd.Process.Pid
	killHelper(t, cmd)

	open, err := openLedger(t, dir).OpenFor([]string{"endpoint:127.0.0.1:1"})
	require.NoError(t, err)
	require.Len(t, open, 1, "an intent written before a SIGKILL must be there for recover")
	require.Equal(t, "dead-run/fault-0", open[0].ID)
	require.Equal(t, safety.StateIntent, open[0].State)
	require.Equal(t, pid, open[0].RunnerPID, "the entry names the dead runner")
}

func TestLedgerFilesArePrivate(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	l := openLedger(t, state)
	require.NoError(t, l.Intend(entry("run1", "fault-0", "endpoint:a")))
	require.NoError(t, l.Intend(entry("run1", "fault-1", "endpoint:a")))
	require.NoError(t, l.Reverted("run1/fault-1"))

	for _, d := range []string{state, filepath.Join(state, "ledger"), filepath.Join(state, "ledger", "done")} {
		fi, err := os.Stat(d)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), "%s holds fault parameters and must be private", d)
	}
	for _, f := range []string{
		filepath.Join(state, "ledger", "run1%2Ffault-0.json"),
		filepath.Join(state, "ledger", "done", "run1%2Ffault-1.json"),
		filepath.Join(state, "ledger.lock"),
	} {
		fi, err := os.Stat(f)
		require.NoError(t, err, "the entry file is named after its ID")
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "%s must be private", f)
	}
}

func TestLedgerLongAndOddIDs(t *testing.T) {
	l := openLedger(t, t.TempDir())
	long := entry("run1", string(make([]byte, 300)), "endpoint:a")
	odd := entry("run1", "../../prepared-latency-link", "endpoint:a")
	for _, e := range []safety.Entry{long, odd} {
		require.NoError(t, l.Intend(e), "any ID must map to a file inside the ledger")
		require.NoError(t, l.Injected(e.ID, "h"))
	}
	open, err := l.Open()
	require.NoError(t, err)
	require.Len(t, open, 2)
	for _, e := range []safety.Entry{long, odd} {
		require.NoError(t, l.Reverted(e.ID))
	}
	open, err = l.Open()
	require.NoError(t, err)
	require.Empty(t, open)
}

func TestDefaultStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	t.Setenv("HOME", "/home/u")
	require.Equal(t, "/xdg/state/chaos", safety.DefaultStateDir())

	t.Setenv("XDG_STATE_HOME", "relative/state")
	require.Equal(t, "/home/u/.local/state/chaos", safety.DefaultStateDir(), "a relative XDG_STATE_HOME is invalid and ignored")

	t.Setenv("XDG_STATE_HOME", "")
	require.Equal(t, "/home/u/.local/state/chaos", safety.DefaultStateDir())

	require.NoError(t, os.Unsetenv("HOME"))
	require.Equal(t, "/var/lib/chaos", safety.DefaultStateDir(), "only a process without HOME falls back to /var/lib")
}

func TestEnsureStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	require.NoError(t, safety.EnsureStateDir(dir))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	require.NoError(t, safety.EnsureStateDir(dir), "an existing state directory is fine")

	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	require.Error(t, safety.EnsureStateDir(file), "a file where the directory should be is an error")
}

// TestLedgerLockHeldByAStoppedRunner: a runner stopped (SIGSTOP) in the
// middle of a ledger write holds the ledger's lock for as long as it is
// stopped. Another runner's intent waits LedgerLockWait (on the fake
// clock) and then fails, naming the holder and its state, with nothing
// recorded; once the holder is gone the same intent goes through.
func TestLedgerLockHeldByAStoppedRunner(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(time.Unix(1_800_000_000, 0))
	l, err := safety.OpenLedger(dir, safety.WithClock(clk))
	require.NoError(t, err)
	holder := startHelper(t, "holdledger", dirEnv+"="+dir)
	require.NoError(t, holder.Process.Signal(syscall.SIGSTOP))

	done := make(chan error, 1)
	ctx, returned := context.WithCancel(t.Context())
	go func() {
		done <- l.Intend(entry("run-b", "fault-0", "endpoint:127.0.0.1:1"))
		returned()
	}()
	// Advance the fake clock to each timer the intent waits on, until it
	// returns.
	var waited time.Duration
	for clk.BlockUntil(ctx, 1) == nil {
		d, _ := clk.Next()
		clk.Advance(d)
		waited += d
	}
	err = <-done
	require.GreaterOrEqual(t, waited, safety.LedgerLockWait, "the intent waited its whole bound (on the fake clock)")
	t.Logf("the intent says: %v", err)
	require.ErrorIs(t, err, safety.ErrLockBusy)
	require.ErrorContains(t, err, fmt.Sprintf("pid %d", holder.Process.Pid), "the error names the holder")
	require.ErrorContains(t, err, "stopped", "and says it is stopped")

	killHelper(t, holder)
	open, err := l.Open()
	require.NoError(t, err)
	require.Empty(t, open, "nothing was recorded: the inject that would follow never happens")
	require.NoError(t, l.Intend(entry("run-b", "fault-0", "endpoint:127.0.0.1:1")), "with the holder gone the lock is free at once")
}
