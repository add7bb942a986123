package safety

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaos-run/chaos/internal/clock"
)

// EntryState is where a ledger entry is in its life.
type EntryState string

// The states of a ledger entry, in order. An entry is open until it is
// reverted.
const (
	// StateIntent: the fault is about to be injected. The runner may have
	// died before, during or after the inject, so recover must treat it as
	// possibly live.
	StateIntent EntryState = "intent"
	// StateInjected: the plugin confirmed the fault and gave its handle.
	StateInjected EntryState = "injected"
	// StateReverted: the plugin confirmed the revert; nothing is left.
	StateReverted EntryState = "reverted"
)

func (s EntryState) valid() bool {
	return s == StateIntent || s == StateInjected || s == StateReverted
}

// Entry is the ledger's record of one fault.
type Entry struct {
	// ID is unique across runners: RunID + "/" + the fault's key in the run,
	// e.g. "20261125T101500Z-ab12cd/fault-0".
	ID    string `json:"id"`
	RunID string `json:"runID"`
	// Plugin is the plugin that injects the fault and can revert it.
	Plugin string `json:"plugin"`
	// TargetKey names the target for locks and for OpenFor: two runs that
	// would fault the same thing use the same key. It is the target's
	// identity, never its parameters: the ledger holds no resolved `with`
	// value (a secret among them would stay on disk for ever), because a
	// revert needs only the handle or the id.
	TargetKey string `json:"targetKey"`
	// Keys are the keys of the concrete things the target resolved to
	// (the plugin's Resolve), and of what they cover: OpenFor matches them
	// too, so a run naming one of those things differently still finds the
	// entry.
	Keys []string `json:"keys,omitempty"`
	// Handle is the plugin's handle for the fault, known once injected.
	Handle   string     `json:"handle,omitempty"`
	Prepared bool       `json:"prepared,omitempty"`
	State    EntryState `json:"state"`
	// RunnerPID is the process that wrote the entry; recover uses it to tell
	// a live run from a dead one.
	RunnerPID int `json:"runnerPID"`
	// RunnerStart is the runner's start time (see ProcessStart), so that a
	// recycled pid is not taken for the runner. Intend sets it.
	RunnerStart uint64 `json:"runnerStart,omitempty"`
	// PluginPID is the plugin process that was asked for the fault, so that
	// recover can make sure it is gone (it reverts on SIGTERM) before it
	// trusts a fresh plugin's word that a handle is unknown.
	PluginPID int `json:"pluginPID,omitempty"`
	// PluginStart is the plugin process's start time; Intend sets it. Only
	// a process with this pid and this start time is the entry's plugin.
	PluginStart uint64        `json:"pluginStart,omitempty"`
	LeaseTTL    time.Duration `json:"leaseTTL"`
	Experiment  string        `json:"experiment"`
	File        string        `json:"file,omitempty"`
	CreatedAt   time.Time     `json:"createdAt"`
	UpdatedAt   time.Time     `json:"updatedAt"`
	// Note says what went wrong, e.g. why a revert failed.
	Note string `json:"note,omitempty"`
}

// Ledger is the on-disk record of every fault, written before the fault is
// injected, so that `chaos recover` can revert what a killed runner left.
//
// Each entry is one file under <stateDir>/ledger/, replaced atomically and
// fsynced on every change; a reverted entry is moved to ledger/done/ and
// kept as history. Several runners may share one state directory: their
// entries have different IDs and so different files, and every
// read-modify-write of an entry holds an exclusive flock on
// <stateDir>/ledger.lock, which also orders writers against `chaos recover`.
//
// A Ledger holds no open files; it is safe for concurrent use.
type Ledger struct {
	stateDir string
	dir      string // <stateDir>/ledger
	done     string // <stateDir>/ledger/done
	lockPath string // <stateDir>/ledger.lock
	redact   func(string) string
	clock    clock.Clock
}

// LedgerOption configures OpenLedger.
type LedgerOption func(*Ledger)

// WithRedact makes the ledger pass every free text it writes (notes, the
// experiment's name and file) through redact, so that a plugin's error
// that quotes a secret parameter never reaches the disk. The CLI gives it
// the experiment's secrets.
func WithRedact(redact func(string) string) LedgerOption {
	return func(l *Ledger) { l.redact = redact }
}

// LedgerLockWait bounds how long a step waits for the ledger's lock: the
// lock is held for one read-modify-write of an entry (milliseconds), so a
// longer wait means a holder that is not running (stopped mid-write), and
// the step fails (ErrLockBusy, naming the holder) rather than waiting with
// it. A step that fails so before an inject injects nothing.
const LedgerLockWait = 10 * time.Second

// WithClock makes the ledger wait for its lock on c (a test's fake clock).
func WithClock(c clock.Clock) LedgerOption {
	return func(l *Ledger) { l.clock = c }
}

// lock takes the ledger's lock (unix.LOCK_EX or LOCK_SH), waiting at most
// LedgerLockWait.
func (l *Ledger) lock(how int) (unlock func(), err error) {
	return flockPath(l.lockPath, how, clock.Or(l.clock), LedgerLockWait)
}

// OpenLedger opens the ledger in stateDir, creating the directories it
// needs with mode 0700. It refuses a state directory, or a ledger
// directory, that is a symlink, not the user's, or writable by others
// (ErrUnsafeStateDir).
func OpenLedger(stateDir string, opts ...LedgerOption) (*Ledger, error) {
	if err := EnsureStateDir(stateDir); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	// Absolute, so that Discard can tell whether a file is in the ledger.
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l := &Ledger{
		stateDir: abs,
		dir:      filepath.Join(abs, "ledger"),
		done:     filepath.Join(abs, "ledger", "done"),
		lockPath: filepath.Join(abs, "ledger.lock"),
		redact:   func(s string) string { return s },
	}
	for _, o := range opts {
		o(l)
	}
	if _, err := ensureSubdir(abs, "ledger"); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if _, err := ensureSubdir(l.dir, "done"); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return l, nil
}

// Intend records that the fault e is about to be injected. It returns only
// once the entry is durable on disk, so an inject that follows can always be
// found by recover. State and UpdatedAt are set here; CreatedAt is set if
// zero, and RunnerPID defaults to this process. It refuses an ID whose entry
// is still open (ErrEntryExists).
func (l *Ledger) Intend(e Entry) error {
	if err := checkNew(e); err != nil {
		return fmt.Errorf("record intent: %w", err)
	}
	unlock, err := l.lock(unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("record intent for %s: %w", e.ID, err)
	}
	defer unlock()

	name := entryFileName(e.ID)
	old, err := readEntry(filepath.Join(l.dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		// An unreadable file may still stand for a live fault; never
		// overwrite it.
		return fmt.Errorf("record intent for %s: %w", e.ID, err)
	case old.State != StateReverted:
		return fmt.Errorf("record intent for %s (state %s since %s): %w", e.ID, old.State, old.UpdatedAt.Format(time.RFC3339), ErrEntryExists)
	}

	now := time.Now().UTC()
	e.State = StateIntent
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now
	}
	e.UpdatedAt = now
	if e.RunnerPID == 0 {
		e.RunnerPID = os.Getpid()
	}
	// Start times pin the pids to these processes for recover. A process
	// already gone has none; recover then never signals its pid.
	if e.RunnerStart == 0 {
		e.RunnerStart, _ = ProcessStart(e.RunnerPID)
	}
	if e.PluginStart == 0 && e.PluginPID > 0 {
		e.PluginStart, _ = ProcessStart(e.PluginPID)
	}
	if err := l.write(l.dir, e); err != nil {
		return fmt.Errorf("record intent for %s: %w", e.ID, err)
	}
	return nil
}

// checkNew refuses entries recover could not act on.
func checkNew(e Entry) error {
	switch {
	case e.ID == "":
		return errors.New("entry has no id")
	case e.RunID == "":
		return fmt.Errorf("entry %s has no run id", e.ID)
	case !strings.HasPrefix(e.ID, e.RunID+"/") || len(e.ID) == len(e.RunID)+1:
		// The run id in the ID is what keeps runners sharing a state
		// directory from ever writing the same file.
		return fmt.Errorf("entry id %q must be its run id %q, a slash and the fault's key", e.ID, e.RunID)
	case e.Plugin == "":
		return fmt.Errorf("entry %s has no plugin", e.ID)
	case e.TargetKey == "":
		// Without a key OpenFor cannot see the entry, and a new run would
		// start on a target that may still carry this fault.
		return fmt.Errorf("entry %s has no target key", e.ID)
	}
	return nil
}

// Injected records that the fault is live and what its handle is.
func (l *Ledger) Injected(id, handle string) error {
	err := l.update(id, false, func(e *Entry) error {
		if e.State == StateReverted {
			return fmt.Errorf("entry is already reverted: %w", ErrNoEntry)
		}
		e.State = StateInjected
		e.Handle = handle
		return nil
	})
	if err != nil {
		return fmt.Errorf("record handle for %s: %w", id, err)
	}
	return nil
}

// Note attaches a note to an entry, open or reverted, replacing any
// earlier note.
func (l *Ledger) Note(id, note string) error {
	err := l.update(id, true, func(e *Entry) error {
		e.Note = note
		return nil
	})
	if err != nil {
		return fmt.Errorf("note on %s: %w", id, err)
	}
	return nil
}

// Reverted records that the plugin confirmed the revert, and moves the
// entry to ledger/done/. Reverting an entry already reverted is not an
// error, so recover can be run again after it was interrupted.
func (l *Ledger) Reverted(id string) error {
	unlock, err := l.lock(unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("record revert of %s: %w", id, err)
	}
	defer unlock()

	name := entryFileName(id)
	e, err := readEntry(filepath.Join(l.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(filepath.Join(l.done, name)); derr == nil {
			return nil
		}
		return fmt.Errorf("record revert of %s: %w", id, ErrNoEntry)
	}
	if err != nil {
		return fmt.Errorf("record revert of %s: %w", id, err)
	}
	// First make the open file say "reverted", then move it. A crash
	// between the two leaves a reverted entry in ledger/, which Open skips;
	// the other order could leave a live-looking copy behind.
	if e.State != StateReverted {
		e.State = StateReverted
		e.UpdatedAt = time.Now().UTC()
		if err := l.write(l.dir, e); err != nil {
			return fmt.Errorf("record revert of %s: %w", id, err)
		}
	}
	if err := os.Rename(filepath.Join(l.dir, name), filepath.Join(l.done, name)); err != nil {
		return fmt.Errorf("record revert of %s: %w", id, err)
	}
	if err := syncDir(l.done); err != nil {
		return fmt.Errorf("record revert of %s: %w", id, err)
	}
	if err := syncDir(l.dir); err != nil {
		return fmt.Errorf("record revert of %s: %w", id, err)
	}
	return nil
}

// Open returns every entry not yet reverted, oldest first (by CreatedAt,
// then ID). A file that cannot be read as an entry is never skipped
// silently: Open returns the entries it could read together with an error
// joining an *UnreadableEntryError (wrapping ErrCorruptEntry) for each file
// it could not.
func (l *Ledger) Open() ([]Entry, error) {
	out, bad, err := l.Read()
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		errs := make([]error, len(bad))
		for i, b := range bad {
			errs[i] = b
		}
		return out, fmt.Errorf("read ledger: %w", errors.Join(errs...))
	}
	return out, nil
}

// Read returns every entry not yet reverted, oldest first, and every file
// of the ledger that could not be read as an entry, so that recover can
// act on the first and name the second. err is for a ledger that cannot be
// read at all.
func (l *Ledger) Read() (open []Entry, unreadable []*UnreadableEntryError, err error) {
	unlock, err := l.lock(unix.LOCK_SH)
	if err != nil {
		return nil, nil, fmt.Errorf("read ledger: %w", err)
	}
	defer unlock()

	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read ledger: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		// Directories (done/, discarded/) and the temporary files of
		// writes that never finished are not entries. A temporary file
		// never stands for an injected fault: Intend had not returned, so
		// nothing was injected.
		if de.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		e, err := readEntry(filepath.Join(l.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // reverted meanwhile by a writer that does not lock
		}
		var bad *UnreadableEntryError
		if errors.As(err, &bad) {
			unreadable = append(unreadable, bad)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read ledger: %w", err)
		}
		if e.State == StateReverted {
			continue
		}
		open = append(open, e)
	}
	slices.SortFunc(open, func(a, b Entry) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return open, unreadable, nil
}

// UnreadableEntryError is a file in the ledger directory that cannot be
// read as an entry. chaos cannot tell which fault it records, or whether
// that fault is live, so it never ignores it: runs refuse to start and
// recover names it until a person has checked it and set it aside with
// `chaos recover --discard`. It wraps ErrCorruptEntry and the cause.
type UnreadableEntryError struct {
	Path string
	Err  error
}

func (e *UnreadableEntryError) Error() string {
	return fmt.Sprintf("ledger file %s cannot be read as an entry (%v), so chaos cannot tell which fault it records or whether that fault is live; check it by hand, revert its fault if there is one, then run `chaos recover --discard %s`", e.Path, e.Err, e.Path)
}

func (e *UnreadableEntryError) Unwrap() []error { return []error{ErrCorruptEntry, e.Err} }

// OpenFor returns the open entries whose TargetKey or one of whose Keys is
// one of targetKeys. A
// corrupt file makes it fail: it may be a fault on one of these targets.
func (l *Ledger) OpenFor(targetKeys []string) ([]Entry, error) {
	all, err := l.Open()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range all {
		if slices.Contains(targetKeys, e.TargetKey) || slices.ContainsFunc(e.Keys, func(k string) bool { return slices.Contains(targetKeys, k) }) {
			out = append(out, e)
		}
	}
	return out, nil
}

// update applies change to entry id under the ledger lock and writes it
// back durably. With done set, a reverted entry in ledger/done/ is found
// too.
func (l *Ledger) update(id string, done bool, change func(*Entry) error) error {
	unlock, err := l.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()

	name := entryFileName(id)
	dir := l.dir
	e, err := readEntry(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) && done {
		dir = l.done
		e, err = readEntry(filepath.Join(dir, name))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoEntry
	}
	if err != nil {
		return err
	}
	if err := change(&e); err != nil {
		return err
	}
	e.UpdatedAt = time.Now().UTC()
	return l.write(dir, e)
}

func (l *Ledger) write(dir string, e Entry) error {
	e.Note = l.redact(e.Note)
	e.Experiment = l.redact(e.Experiment)
	e.File = l.redact(e.File)
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, entryFileName(e.ID), append(data, '\n'))
}

// readEntry reads one entry file. A missing file is fs.ErrNotExist; a file
// that is not a valid entry (a symlink, not a plain file, not JSON, not
// named after its id) is an *UnreadableEntryError.
func readEntry(path string) (Entry, error) {
	data, err := readNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, err
	}
	if err != nil {
		return Entry{}, &UnreadableEntryError{Path: path, Err: err}
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, &UnreadableEntryError{Path: path, Err: err}
	}
	if e.ID == "" || !e.State.valid() {
		return Entry{}, &UnreadableEntryError{Path: path, Err: fmt.Errorf("missing id or unknown state %q", e.State)}
	}
	if entryFileName(e.ID) != filepath.Base(path) {
		// A file copied or renamed by hand would be updated under the
		// wrong name and never leave the open list.
		return Entry{}, &UnreadableEntryError{Path: path, Err: fmt.Errorf("holds entry %q, whose file is %s", e.ID, entryFileName(e.ID))}
	}
	return e, nil
}

// entryFileName maps an entry ID to a file name that is readable, unique
// and safe: bytes other than [A-Za-z0-9_.-] (and a leading dot) become %XX,
// so "run/fault-0" is "run%2Ffault-0.json". An ID too long for a file name
// becomes "~" and its SHA-256; "~" never appears in an escaped name.
func entryFileName(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > 200 {
		sum := sha256.Sum256([]byte(id))
		return "~" + hex.EncodeToString(sum[:]) + ".json"
	}
	return b.String() + ".json"
}
