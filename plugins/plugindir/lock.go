package plugindir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// LockFileName is the lock file's name, next to the experiments or in the
// plugin directory.
const LockFileName = "plugins.lock"

// maxLockFile bounds what is read of a lock file.
const maxLockFile = 1 << 20

// Pin is one plugin the lock file trusts: its name, the version it said it
// was when it was pinned, and the SHA-256 of its binary (lowercase hex).
type Pin struct {
	Name    string
	Version string
	SHA256  string
	// Line is where the pin is in the lock file (0 for a new pin).
	Line int
}

// Lock is a lock file: the plugins a team trusts, by the hash of their
// binaries. It is the one thing that says which installed binaries may run.
type Lock struct {
	// Path is the lock file's path; "" when there is no lock file.
	Path string
	Pins map[string]Pin
}

// pinLine is one line of a lock file: NAME VERSION sha256:HEX.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	sumRE  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// ReadLock reads the lock file at path. A file that does not exist is an
// error wrapping fs.ErrNotExist; a malformed one names each bad line
// (path:line:col) and wraps ErrBadLock.
func ReadLock(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read lock file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLockFile+1))
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", path, err)
	}
	if len(data) > maxLockFile {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, maxLockFile, ErrBadLock)
	}
	return ParseLock(path, data)
}

// ParseLock parses a lock file's text. Every problem is reported, each as
// path:line:col: message.
func ParseLock(path string, data []byte) (*Lock, error) {
	l := &Lock{Path: path, Pins: map[string]Pin{}}
	var probs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLockFile)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		text := strings.TrimSpace(line)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		col := func(field string) int { return strings.Index(line, field) + 1 }
		fields := strings.Fields(text)
		if len(fields) != 3 {
			probs = append(probs, fmt.Sprintf("%s:%d:%d: want `NAME VERSION sha256:HEX`, found %d fields", path, n, col(fields[0]), len(fields)))
			continue
		}
		name, version, sum := fields[0], fields[1], fields[2]
		switch {
		case !nameRE.MatchString(name):
			probs = append(probs, fmt.Sprintf("%s:%d:%d: %q is not a plugin name (lowercase letters, digits, '.', '_', '-')", path, n, col(name), name))
		case !sumRE.MatchString(sum):
			probs = append(probs, fmt.Sprintf("%s:%d:%d: %q is not a checksum: want sha256: and 64 lowercase hex digits", path, n, col(sum), sum))
		default:
			if prev, dup := l.Pins[name]; dup {
				probs = append(probs, fmt.Sprintf("%s:%d:%d: %s is pinned twice (first at line %d)", path, n, col(name), name, prev.Line))
				continue
			}
			l.Pins[name] = Pin{Name: name, Version: version, SHA256: strings.TrimPrefix(sum, "sha256:"), Line: n}
		}
	}
	if err := sc.Err(); err != nil {
		probs = append(probs, fmt.Sprintf("%s: %v", path, err))
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w:\n%s", ErrBadLock, strings.Join(probs, "\n"))
	}
	return l, nil
}

// lockHeader opens every lock file chaos writes.
const lockHeader = `# Fault plugins this project trusts, pinned by the SHA-256 of their binaries.
# Written by ` + "`chaos plugins lock`" + `; commit it next to your experiments.
# chaos refuses to start an installed plugin whose binary does not match.
# NAME VERSION SHA256
`

// Marshal is the lock file's text: the header, then one pin a line, sorted
// by name, so that a change of one plugin is a one-line diff.
func (l *Lock) Marshal() []byte {
	names := make([]string, 0, len(l.Pins))
	for n := range l.Pins {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(lockHeader)
	for _, n := range names {
		p := l.Pins[n]
		fmt.Fprintf(&b, "%s %s sha256:%s\n", p.Name, p.Version, p.SHA256)
	}
	return b.Bytes()
}

// WriteLock writes the lock file so that a reader sees the old one or the
// whole new one (a temporary file renamed over it), with mode 0644: it is
// meant to be committed and read by everyone.
func WriteLock(path string, l *Lock) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(l.Marshal()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write lock file %s: %w", path, err)
	}
	return nil
}

// FindLock says which lock file applies to an experiment file: flag when
// given (--plugin-lock); else plugins.lock next to the experiment file; else
// plugins.lock in the plugin directory; else none (""), and every installed
// plugin is unpinned.
func FindLock(flag, experimentFile, pluginDir string) string {
	if flag != "" {
		return flag
	}
	var candidates []string
	if experimentFile != "" {
		candidates = append(candidates, filepath.Join(filepath.Dir(experimentFile), LockFileName))
	}
	if pluginDir != "" {
		candidates = append(candidates, filepath.Join(pluginDir, LockFileName))
	}
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil || !errors.Is(err, os.ErrNotExist) {
			return c
		}
	}
	return ""
}
