package safety

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Discard sets aside a ledger file that cannot be read as an entry, once a
// person has checked it by hand: it moves the file into ledger/discarded/
// under a name with the time, beside a note saying when, by whom and why,
// so that runs and recover no longer stop at it. It refuses anything but a
// file directly in the ledger directory (ErrNotInLedger), and an entry it
// can read (ErrEntryReadable): recover reverts those. It returns where the
// file went.
func (l *Ledger) Discard(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	name := filepath.Base(abs)
	if filepath.Dir(abs) != l.dir || name == "." || name == ".." {
		return "", fmt.Errorf("discard %s: %w %s; nothing was moved", path, ErrNotInLedger, l.dir)
	}
	unlock, err := l.lock(unix.LOCK_EX)
	if err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	defer unlock()

	fi, err := os.Lstat(abs)
	if err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("discard %s: it is a directory: %w %s; nothing was moved", path, ErrNotInLedger, l.dir)
	}
	e, rerr := readEntry(abs)
	var bad *UnreadableEntryError
	switch {
	case rerr == nil && e.State != StateReverted:
		return "", fmt.Errorf("discard %s: it records fault %s (%s on %s, %s), which `chaos recover` reverts; discarding it would forget a fault that may be live: %w",
			path, e.ID, e.Plugin, e.TargetKey, e.State, ErrEntryReadable)
	case rerr == nil:
		return "", fmt.Errorf("discard %s: it records fault %s, already reverted: %w", path, e.ID, ErrEntryReadable)
	case !errors.As(rerr, &bad):
		return "", fmt.Errorf("discard %s: %w", path, rerr)
	}

	dir, err := ensureSubdir(l.dir, "discarded")
	if err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	now := time.Now().UTC()
	dest := filepath.Join(dir, name+"."+now.Format("20060102T150405.000000000Z"))
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("discard %s: %s already exists", path, dest)
	}
	note, err := json.MarshalIndent(discardNote{
		File: abs, DiscardedAt: now, UID: os.Getuid(), PID: os.Getpid(),
		Why: l.redact(fmt.Sprintf("it could not be read as a ledger entry (%v); a person checked it and ran `chaos recover --discard`. chaos no longer counts it: a fault it recorded that is still live must be removed by hand", bad.Err)),
	}, "", "  ")
	if err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	// The note first: a crash between the two leaves a note about a file
	// still in place, never a moved file nobody can explain.
	if err := writeFileAtomic(dir, filepath.Base(dest)+".note.json", append(note, '\n')); err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	if err := os.Rename(abs, dest); err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	if err := syncDir(l.dir); err != nil {
		return "", fmt.Errorf("discard %s: %w", path, err)
	}
	return dest, nil
}

// discardNote is written beside a discarded file.
type discardNote struct {
	File        string    `json:"file"`
	DiscardedAt time.Time `json:"discardedAt"`
	UID         int       `json:"uid"`
	PID         int       `json:"pid"`
	Why         string    `json:"why"`
}

// RunnerAlive reports whether the run that wrote e is still running, and
// how that was decided. The run's lock on the entry's target says it best:
// a run holds it from before its first intent until after its last revert,
// and the kernel drops it when the run dies, however it dies. Without a
// lock to ask (a run without target locks, a lock file gone), the runner's
// pid and start time decide: a recycled pid is not the runner.
func (l *Ledger) RunnerAlive(e Entry) (bool, string) {
	path := filepath.Join(l.stateDir, "locks", lockFileName(e.TargetKey))
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if err == nil {
		defer f.Close()
		// A shared lock, at once released: it is granted only if no run
		// holds the target.
		err := flock(f, unix.LOCK_SH|unix.LOCK_NB)
		switch {
		case err == nil:
			return false, fmt.Sprintf("no run holds the lock on %s", e.TargetKey)
		case errors.Is(err, unix.EWOULDBLOCK):
			h := readHolder(f)
			if h.RunID == e.RunID {
				return true, fmt.Sprintf("its run %s (pid %d) still holds the lock on %s", h.RunID, h.PID, e.TargetKey)
			}
			if h.RunID != "" {
				// Its own run would hold this lock while it lives.
				return false, fmt.Sprintf("the lock on %s is held by another run (%s)", e.TargetKey, h.RunID)
			}
		}
	}
	if IsProcess(e.RunnerPID, e.RunnerStart) {
		return true, fmt.Sprintf("its runner (pid %d) is still running", e.RunnerPID)
	}
	if e.RunnerStart == 0 && e.RunnerPID > 0 {
		if _, _, err := procStat(e.RunnerPID); err == nil {
			// No start time was recorded: a live process with that pid
			// may be the runner. Err on the side of not touching its
			// faults; --force overrides.
			return true, fmt.Sprintf("a process with its runner's pid %d is running (no start time was recorded to tell them apart)", e.RunnerPID)
		}
	}
	return false, fmt.Sprintf("its runner (pid %d) has ended", e.RunnerPID)
}
