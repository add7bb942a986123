package safety

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaos-run/chaos/internal/clock"
)

// LockedError is the error of a target another run holds. It wraps
// ErrTargetLocked and names the holder, so the refusal can say whom to ask.
type LockedError struct {
	Key string
	// RunID and PID are the holder's, as it wrote them into the lock file;
	// empty and zero if it had not written them yet.
	RunID string
	PID   int
}

func (e *LockedError) Error() string {
	if e.RunID == "" && e.PID == 0 {
		return fmt.Sprintf("target %q is held by a run that has not said who it is: %v", e.Key, ErrTargetLocked)
	}
	return fmt.Sprintf("target %q is held by run %s (pid %d): %v", e.Key, e.RunID, e.PID, ErrTargetLocked)
}

func (e *LockedError) Unwrap() error { return ErrTargetLocked }

// Lock is a run's hold on its targets. The kernel releases it when the
// process ends, however it ends (SIGKILL included), so a dead run never
// blocks a target; Release gives it back early.
type Lock struct {
	mu    sync.Mutex
	files []*os.File
}

// holder is what a lock file says about the run that holds it.
type holder struct {
	RunID string    `json:"runID"`
	PID   int       `json:"pid"`
	Key   string    `json:"key"`
	Since time.Time `json:"since"`
}

// LockTargets takes an exclusive lock on each target key for the run runID,
// so that two runs sharing stateDir never fault one target. It never
// waits: if another run holds a key, it releases what it took and returns a
// *LockedError (wrapping ErrTargetLocked) naming the key and the holder.
//
// Each key is an flock on <stateDir>/locks/<first 16 hex of sha256(key)>.lock,
// taken in sorted order so two runs asking for overlapping sets cannot
// deadlock. The files are opened close-on-exec, so a plugin process the
// runner starts does not inherit them and keep a dead run's targets locked.
// Lock files are never removed: removing a file another process is about
// to lock would let two runs lock two different files for one key.
func LockTargets(stateDir string, keys []string, runID string) (*Lock, error) {
	if err := EnsureStateDir(stateDir); err != nil {
		return nil, fmt.Errorf("lock targets: %w", err)
	}
	dir, err := ensureSubdir(stateDir, "locks")
	if err != nil {
		return nil, fmt.Errorf("lock targets: %w", err)
	}
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)

	l := &Lock{}
	for _, key := range keys {
		f, err := lockTarget(dir, key, runID)
		if err != nil {
			_ = l.Release()
			return nil, err
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

func lockTarget(dir, key, runID string) (*os.File, error) {
	if key == "" {
		return nil, errors.New("lock targets: empty target key")
	}
	f, held, err := LockFile(filepath.Join(dir, lockFileName(key)), holder{RunID: runID, PID: os.Getpid(), Key: key, Since: time.Now().UTC()})
	if errors.Is(err, ErrFileLocked) {
		var h holder
		_ = json.Unmarshal(held, &h) // a holder between its flock and its write is unknown, not an error
		return nil, &LockedError{Key: key, RunID: h.RunID, PID: h.PID}
	}
	if err != nil {
		return nil, fmt.Errorf("lock target %q: %w", key, err)
	}
	return f, nil
}

// ErrFileLocked means another process holds the lock file LockFile was
// asked for.
var ErrFileLocked = errors.New("lock file held by another process")

// LockFile takes an exclusive flock on the lock file at path (made if
// missing, never through a symbolic link), without waiting, and writes
// holder into it as JSON, for the message of whoever is refused next; the
// lock is the flock, so the content is not synced. Held by another
// process, it returns ErrFileLocked and what the holder wrote (empty or
// partial when the holder is between its flock and its write). Closing
// the file gives the lock back; truncate it first so that nobody refused
// later names a holder that is gone.
func LockFile(path string, holder any) (f *os.File, held []byte, err error) {
	f, err = openNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer func() { _ = f.Close() }()
		if errors.Is(err, unix.EWOULDBLOCK) {
			held, _ = io.ReadAll(io.NewSectionReader(f, 0, 64<<10))
			return nil, held, ErrFileLocked
		}
		return nil, nil, err
	}
	data, _ := json.Marshal(holder)
	werr := f.Truncate(0)
	if werr == nil {
		_, werr = f.WriteAt(append(data, '\n'), 0)
	}
	if werr != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, werr)
	}
	return f, nil, nil
}

// lockFileName is the name of key's lock file in <stateDir>/locks.
func lockFileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])[:16] + ".lock"
}

// readHolder reads who holds a lock. The holder may be between taking the
// flock and writing its name, so an empty or partial file is an unknown
// holder, not an error.
func readHolder(f *os.File) holder {
	var h holder
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 64<<10))
	if err == nil {
		_ = json.Unmarshal(data, &h)
	}
	return h
}

// Release gives the targets back. It is safe to call more than once and
// from several goroutines.
func (l *Lock) Release() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, f := range l.files {
		// Empty the file first, so a run refused later does not name a
		// holder that is gone.
		_ = f.Truncate(0)
		errs = append(errs, f.Close())
	}
	l.files = nil
	return errors.Join(errs...)
}

// flock applies an flock operation, retrying when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// ErrLockBusy means a lock a step needs was held by another process for
// longer than the step may wait for it.
var ErrLockBusy = errors.New("lock held too long by another process")

// flockPath opens (creating) the lock file at path and flocks it, waiting
// at most wait (on clk) for another holder to let go; the returned func
// unlocks it by closing the file. Each call opens its own file, so two
// goroutines of one process exclude each other as two processes do.
//
// The wait is bounded because a holder may never let go while it lives: a
// runner stopped (SIGSTOP, a debugger) in the middle of a write holds the
// lock for as long as it is stopped. Past the wait the error names the
// holder, from /proc/locks, and the state it is in.
func flockPath(path string, how int, clk clock.Clock, wait time.Duration) (unlock func(), err error) {
	f, err := openNoFollow(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	start := clk.Now()
	backoff := time.Millisecond
	for {
		err := flock(f, how|unix.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			_ = f.Close()
			return nil, err
		}
		left := wait - clk.Now().Sub(start)
		if left <= 0 {
			holder := lockHolder(f)
			_ = f.Close()
			return nil, fmt.Errorf("%s: %w: waited %s; %s", path, ErrLockBusy, wait, holder)
		}
		t := clk.NewTimer(min(backoff, left))
		<-t.C()
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// lockHolder says who holds an flock on f's file, from /proc/locks, and
// in what state that process is.
func lockHolder(f *os.File) string {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "its holder is unknown"
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return "its holder is unknown (no /proc/locks)"
	}
	// "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[1] != "FLOCK" {
			continue
		}
		dev := strings.Split(fields[5], ":")
		if len(dev) != 3 || dev[2] != strconv.FormatUint(st.Ino, 10) {
			continue
		}
		pid := fields[4]
		return fmt.Sprintf("it is held by pid %s (%s): resume or stop that process", pid, describeProcess(pid))
	}
	return "its holder is unknown"
}

// describeProcess is a process's name and state, from /proc.
func describeProcess(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "gone"
	}
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i || j+2 >= len(b) {
		return "unknown"
	}
	state := map[byte]string{'R': "running", 'S': "sleeping", 'D': "in uninterruptible sleep", 'T': "stopped", 't': "stopped by a debugger", 'Z': "a zombie"}[b[j+2]]
	if state == "" {
		state = "state " + string(b[j+2])
	}
	return fmt.Sprintf("%s, %s", b[i+1:j], state)
}
