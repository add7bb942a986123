package safety

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Errors of package safety. Callers test them with errors.Is; the errors
// returned around them carry the file, key or reason.
var (
	// ErrBudgetBlind means the probes an abortWhen condition reads could
	// not observe for budget.blindAfter observations in a row, so the
	// budget could not be evaluated: flying blind is not safe.
	ErrBudgetBlind = errors.New("budget could not be evaluated")
	// ErrEntryExists means a ledger entry with this ID is still open: the
	// fault it records was never confirmed reverted.
	ErrEntryExists = errors.New("ledger entry is already open")
	// ErrNoEntry means the ledger has no entry with this ID.
	ErrNoEntry = errors.New("no such ledger entry")
	// ErrCorruptEntry means a ledger file could not be read as an entry.
	ErrCorruptEntry = errors.New("corrupt ledger entry")
	// ErrTargetLocked means another run holds the lock on a target.
	ErrTargetLocked = errors.New("target is locked by another run")
	// ErrKillSwitch means `chaos abort` (or an abort file) stopped the run.
	ErrKillSwitch = errors.New("kill switch engaged")
)

// DefaultStateDir is where the ledger, the target locks and the kill switch
// live unless --state-dir says otherwise: $XDG_STATE_HOME/chaos, else
// ~/.local/state/chaos. Root follows the same rule, so `sudo chaos recover`
// with HOME kept finds what `sudo chaos run` wrote; /var/lib/chaos is used
// only when HOME is unset (a bare service environment).
func DefaultStateDir() string {
	// The XDG spec says a relative XDG_STATE_HOME is invalid and must be
	// ignored; honouring it would put the ledger wherever the runner
	// happened to be started, and recover would not find it.
	if x := os.Getenv("XDG_STATE_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "chaos")
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "chaos")
	}
	return "/var/lib/chaos"
}

// EnsureStateDir creates dir (and its parents) with mode 0700 if it does not
// exist. An existing directory is left as it is: it may be one the user
// chose and shares on purpose.
func EnsureStateDir(dir string) error {
	if dir == "" {
		return errors.New("create state directory: empty path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data so that a reader, or a
// machine that loses power, sees either the old file or the whole new one:
// write a temporary file, fsync it, rename it over the old one, fsync the
// directory so the rename itself is durable. The file has mode 0600.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the directory's entries (creations, renames, removals)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
