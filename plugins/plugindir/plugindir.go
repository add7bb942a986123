// Package plugindir resolves a fault plugin's name to a command chaos may
// run: a built-in plugin (served by the chaos binary itself), or a binary
// installed in the plugin directory as chaos-plugin-NAME and pinned by its
// SHA-256 in a lock file (plugins.lock).
//
// What it must never do: start a binary whose bytes it did not hash. The
// binary is opened once (O_NOFOLLOW), hashed through that descriptor, and
// the very same descriptor is what the plugin process is started from
// (/proc/self/fd/3 in the child), so swapping the file after the check
// changes nothing. The directory must pass the checks the state directory
// passes (safety): a real directory of the user running chaos, writable by
// nobody else. An installed plugin may not take a built-in plugin's name.
package plugindir

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Prefix starts the file name of every installed plugin.
const Prefix = "chaos-plugin-"

// Errors of package plugindir; the errors around them say which plugin,
// which file and what to do.
var (
	// ErrNotInstalled means no plugin of that name is built in or
	// installed.
	ErrNotInstalled = errors.New("no such plugin")
	// ErrNotPinned means the installed plugin is not in the lock file (or
	// there is no lock file), and --allow-unpinned was not given.
	ErrNotPinned = errors.New("plugin is not pinned in the lock file")
	// ErrChecksumMismatch means the installed binary is not the one the
	// lock file pins.
	ErrChecksumMismatch = errors.New("plugin binary does not match its pinned checksum")
	// ErrShadowsBuiltin means an installed plugin has a built-in plugin's
	// name; built-in plugins cannot be replaced.
	ErrShadowsBuiltin = errors.New("installed plugin has the name of a built-in plugin")
	// ErrUnsafe means the plugin directory or a plugin binary could be
	// changed by another user, or is a symbolic link.
	ErrUnsafe = errors.New("unsafe plugin directory")
	// ErrBadLock means the lock file could not be parsed.
	ErrBadLock = errors.New("invalid lock file")
)

// DefaultDir is where installed plugins live unless --plugin-dir or
// $CHAOS_PLUGIN_DIR say otherwise: $XDG_DATA_HOME/chaos/plugins, else
// ~/.local/share/chaos/plugins ("" when neither is known).
func DefaultDir() string {
	// A relative XDG_DATA_HOME is invalid by the XDG spec and ignored, as
	// safety ignores a relative XDG_STATE_HOME.
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "chaos", "plugins")
	}
	if h := os.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "chaos", "plugins")
	}
	return ""
}

// Installed is one chaos-plugin-NAME file of the plugin directory.
type Installed struct {
	Name string
	Path string
}

// List returns the plugins installed in dir, sorted by name. A directory
// that does not exist holds none; one that another user could write to is
// refused (ErrUnsafe).
func List(dir string) ([]Installed, error) {
	if dir == "" {
		return nil, nil
	}
	if err := checkDir(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list plugin directory: %w", err)
	}
	var out []Installed
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), Prefix)
		if !ok || !nameRE.MatchString(name) || e.IsDir() {
			continue
		}
		out = append(out, Installed{Name: name, Path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Source resolves plugin names to commands: built-in ones through
// BuiltinCommand, installed ones from Dir after checking them against Lock.
type Source struct {
	// Dir is the plugin directory; "" means none.
	Dir string
	// LockPath is the lock file pinning installed plugins (FindLock); ""
	// means none. It is read whenever an installed plugin is resolved.
	LockPath string
	// AllowUnpinned lets an installed plugin that the lock file does not
	// name run (--allow-unpinned). A pinned plugin whose sum differs is
	// refused all the same.
	AllowUnpinned bool
	// Builtins are the built-in plugin names.
	Builtins []string
	// BuiltinCommand returns the command serving a built-in plugin.
	BuiltinCommand func(name string) (*exec.Cmd, error)
}

// Names are the plugins a file may name: built-in and installed, sorted.
// Installed plugins are listed whether or not they are pinned, so that a
// file naming an unpinned one is told so when the plugin is started, not
// that the name is unknown.
// Listing names touches nothing, so an unsafe directory is not refused
// here but when one of its plugins is to be started.
func (s Source) Names() []string {
	names := slices.Clone(s.Builtins)
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), Prefix)
		if ok && nameRE.MatchString(name) && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Command returns the command that serves the named plugin. For an
// installed plugin the binary has been hashed and checked against the lock
// file, and the command runs exactly the bytes hashed: the open file is
// the command's ExtraFiles[0], which whoever starts the command must close
// once it has started (engine.ExecPlugins does).
func (s Source) Command(name string) (*exec.Cmd, error) {
	if slices.Contains(s.Builtins, name) {
		if s.Dir != "" {
			path := filepath.Join(s.Dir, Prefix+name)
			if _, err := os.Lstat(path); err == nil {
				return nil, fmt.Errorf("%s: %w %s; built-in plugins cannot be replaced: remove or rename the file", path, ErrShadowsBuiltin, name)
			}
		}
		return s.BuiltinCommand(name)
	}
	v, err := s.Verify(name)
	if err != nil {
		return nil, err
	}
	return v.Command(), nil
}

// Command is the command that runs the verified bytes: the child starts
// from its descriptor 3, which is File, so the path cannot be swapped
// between the hash and the exec. The caller closes File once the command
// has started.
func (v *Verified) Command() *exec.Cmd {
	cmd := exec.Command("/proc/self/fd/3")
	// argv[0] is the installed path: what people and `ps` see, and what a
	// plugin reads its own name from.
	cmd.Args = []string{v.Path}
	cmd.ExtraFiles = []*os.File{v.File}
	return cmd
}

// Verified is an installed plugin binary, open, hashed and checked.
type Verified struct {
	Name string
	Path string
	// File is the binary, open read-only; the caller closes it.
	File *os.File
	// SHA256 is the hash of File's contents, lowercase hex.
	SHA256 string
	// Pin is the lock file's entry; zero when unpinned.
	Pin Pin
}

// Verify opens the installed plugin name, hashes it and checks it against
// the lock file: a pinned binary must match its sum; an unpinned one is
// refused unless AllowUnpinned. The caller closes the returned File.
func (s Source) Verify(name string) (*Verified, error) {
	v, err := s.Hash(name)
	if err != nil {
		return nil, err
	}
	lock, err := s.ReadLock()
	if err != nil {
		_ = v.File.Close()
		return nil, err
	}
	pin, pinned := Pin{}, false
	if lock != nil {
		pin, pinned = lock.Pins[name]
	}
	switch {
	case pinned && pin.SHA256 != v.SHA256:
		_ = v.File.Close()
		return nil, &ChecksumError{Name: name, Path: v.Path, Got: v.SHA256, Want: pin.SHA256, Lock: lock.Path, Line: pin.Line}
	case !pinned && !s.AllowUnpinned:
		_ = v.File.Close()
		where := "there is no lock file (" + LockFileName + " next to the experiment or in the plugin directory, or --plugin-lock)"
		if lock != nil {
			where = lock.Path + " does not name it"
		}
		return nil, fmt.Errorf("plugin %s (%s, sha256:%s): %w: %s; pin it with `chaos plugins lock` after checking where it came from, or pass --allow-unpinned", name, v.Path, v.SHA256, ErrNotPinned, where)
	}
	v.Pin = pin
	return v, nil
}

// ReadLock reads the lock file; nil when there is none. One that was
// named but is missing or malformed is an error wrapping ErrBadLock.
func (s Source) ReadLock() (*Lock, error) {
	if s.LockPath == "" {
		return nil, nil
	}
	l, err := ReadLock(s.LockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lock file %s does not exist: %w", s.LockPath, ErrBadLock)
	}
	if err != nil && !errors.Is(err, ErrBadLock) {
		return nil, fmt.Errorf("%w: %w", err, ErrBadLock)
	}
	return l, err
}

// Hash opens the installed plugin name (never through a symbolic link) and
// hashes it, after checking the directory and the file as the state
// directory is checked. It does not look at the lock file.
func (s Source) Hash(name string) (*Verified, error) {
	if s.Dir == "" {
		return nil, fmt.Errorf("plugin %s: %w (no plugin directory)", name, ErrNotInstalled)
	}
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrNotInstalled)
	}
	path := filepath.Join(s.Dir, Prefix+name)
	if err := checkDir(s.Dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("plugin %s: %w (built-in: %s; %s does not exist)", name, ErrNotInstalled, strings.Join(s.Builtins, ", "), s.Dir)
		}
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, &UnsafeError{Path: path, Problem: "is a symbolic link", Fix: "install the binary itself (cp, not ln -s)"}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("plugin %s: %w (built-in: %s; nothing named %s%s in %s)", name, ErrNotInstalled, strings.Join(s.Builtins, ", "), Prefix, name, s.Dir)
	case err != nil:
		return nil, fmt.Errorf("open plugin %s: %w", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open plugin %s: %w", name, err)
	}
	if err := checkFile(path, &st); err != nil {
		_ = f.Close()
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("hash plugin %s: %w", name, err)
	}
	return &Verified{Name: name, Path: path, File: f, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ChecksumError is a binary that is not the one the lock file pins. It
// wraps ErrChecksumMismatch.
type ChecksumError struct {
	Name, Path string
	Got, Want  string
	Lock       string
	Line       int
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("plugin %s: %s has sha256:%s, but %s:%d pins sha256:%s: %v; reinstall the pinned build, or run `chaos plugins lock` if you trust this one",
		e.Name, e.Path, e.Got, e.Lock, e.Line, e.Want, ErrChecksumMismatch)
}

func (e *ChecksumError) Unwrap() error { return ErrChecksumMismatch }

// UnsafeError says which path of the plugin directory chaos refuses, why,
// and how to fix it. It wraps ErrUnsafe.
type UnsafeError struct {
	Path, Problem, Fix string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s %s: %v; another local user could replace a plugin that chaos runs; fix: %s", e.Path, e.Problem, ErrUnsafe, e.Fix)
}

func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// checkDir applies the state directory's rules (safety/statedir.go) to the
// plugin directory: not a symbolic link, a directory, owned by the user
// running chaos, writable by nobody else. A missing directory is
// fs.ErrNotExist.
func checkDir(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("check plugin directory %s: %w", path, err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return &UnsafeError{Path: path, Problem: "is a symbolic link", Fix: "give --plugin-dir the real path after checking it"}
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return &UnsafeError{Path: path, Problem: "is not a directory", Fix: "choose another --plugin-dir"}
	}
	return checkOwnerMode(path, &st, false)
}

// checkFile refuses a plugin binary that is not a regular file, or that
// another user could have written.
func checkFile(path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &UnsafeError{Path: path, Problem: fmt.Sprintf("is not a plain file (mode %o)", st.Mode), Fix: "remove it after checking what it is"}
	}
	if st.Mode&0o111 == 0 {
		return &UnsafeError{Path: path, Problem: "is not executable", Fix: "chmod u+x " + path}
	}
	return checkOwnerMode(path, st, true)
}

// checkOwnerMode refuses what is not the effective user's (a binary may
// also be root's, as one a package installed) or is writable by group or
// others.
func checkOwnerMode(path string, st *unix.Stat_t, rootOK bool) error {
	uid := os.Geteuid()
	if int(st.Uid) != uid && !(rootOK && st.Uid == 0) {
		return &UnsafeError{Path: path, Problem: fmt.Sprintf("is owned by uid %d, not by the user running chaos (uid %d)", st.Uid, uid),
			Fix: fmt.Sprintf("check it, then `chown %d %s`, or use a plugin directory of your own (--plugin-dir)", uid, path)}
	}
	if perm := st.Mode & 0o7777; perm&0o022 != 0 {
		return &UnsafeError{Path: path, Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm), Fix: "chmod go-w " + path}
	}
	return nil
}
