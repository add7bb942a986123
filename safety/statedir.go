package safety

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
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
	// ErrUnsafeStateDir means the state directory, one of its
	// subdirectories or a file in them could be changed by another user, or
	// is a symbolic link: chaos refuses to use it.
	ErrUnsafeStateDir = errors.New("unsafe state directory")
	// ErrNotInLedger means a file given to Discard is not a file directly
	// in the ledger directory.
	ErrNotInLedger = errors.New("not a file in the ledger directory")
	// ErrEntryReadable means Discard was asked to set aside an entry it can
	// read: recover reverts such an entry instead.
	ErrEntryReadable = errors.New("ledger entry is readable")
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
// exist, and refuses it (ErrUnsafeStateDir, as an *UnsafePathError) unless
// it is a real directory, not a symbolic link, owned by the user running
// chaos and writable by nobody else. Like ssh with ~/.ssh, chaos will not
// trust a directory another local user can plant files in: a lock file
// there that is a symlink to a file of root's would be truncated by root's
// run.
func EnsureStateDir(dir string) error {
	if dir == "" {
		return errors.New("create state directory: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create state directory: %w", err)
	}
	return checkDir(dir)
}

// UnsafePathError says which path of the state directory chaos refuses,
// why, and how to fix it. It wraps ErrUnsafeStateDir.
type UnsafePathError struct {
	Path    string
	Problem string // e.g. "is writable by group or others (mode 0777)"
	Fix     string // e.g. "chmod go-w /path"
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s %s: %v; another local user could plant files or symlinks that a run would write through; fix: %s", e.Path, e.Problem, ErrUnsafeStateDir, e.Fix)
}

func (e *UnsafePathError) Unwrap() error { return ErrUnsafeStateDir }

// ensureSubdir creates parent/name with mode 0700 if it does not exist and
// checks it as EnsureStateDir checks the state directory.
func ensureSubdir(parent, name string) (string, error) {
	path := filepath.Join(parent, name)
	if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := checkDir(path); err != nil {
		return "", err
	}
	return path, nil
}

// checkDir refuses a directory that is a symbolic link, not a directory,
// not owned by the effective user, or writable by group or others.
func checkDir(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return &UnsafePathError{Path: path, Problem: "is a symbolic link", Fix: "replace it with a directory of your own (mkdir -m 700), or give --state-dir the real path after checking it"}
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return &UnsafePathError{Path: path, Problem: "is not a directory", Fix: "remove it after checking what it is, or choose another --state-dir"}
	}
	return checkOwnerMode(path, &st)
}

// checkOwnerMode refuses what is not the effective user's or is writable
// by group or others.
func checkOwnerMode(path string, st *unix.Stat_t) error {
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return &UnsafePathError{Path: path, Problem: fmt.Sprintf("is owned by uid %d, not by the user running chaos (uid %d)", st.Uid, uid),
			Fix: fmt.Sprintf("check its contents, then `chown -R %d %s`, or use a state directory of your own (--state-dir)", uid, path)}
	}
	if perm := st.Mode & 0o7777; perm&0o022 != 0 {
		return &UnsafePathError{Path: path, Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm),
			Fix: "chmod go-w " + path}
	}
	return nil
}

// openNoFollow opens a file of the state directory without following a
// symbolic link in its last component, and refuses anything but a regular
// file of the effective user's with one link (a hard link to another file
// would be written through as a symlink would). O_NONBLOCK keeps a FIFO
// planted in place of a file from blocking the open.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK, perm)
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafePathError{Path: path, Problem: "is a symbolic link", Fix: "remove the link (rm " + path + ") after checking where it points"}
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		_ = f.Close()
		return nil, &UnsafePathError{Path: path, Problem: fmt.Sprintf("is not a plain file (mode %o, %d links)", st.Mode, st.Nlink), Fix: "remove it after checking what it is"}
	}
	if err := checkOwnerMode(path, &st); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// maxStateFile bounds what is read of one file of the state directory.
const maxStateFile = 1 << 20

// readNoFollow reads a file of the state directory as openNoFollow opens
// it, at most maxStateFile bytes.
func readNoFollow(path string) ([]byte, error) {
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxStateFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxStateFile)
	}
	return data, nil
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
