package safety

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// abortFile is the kill switch: while <stateDir>/abort exists, every run
// sharing the state directory aborts. Any file will do (`touch` works, and
// its content, if any, is the reason); Engage writes one atomically.
const abortFile = "abort"

// KillSwitchError is the cause Watch gives abort. It wraps ErrKillSwitch.
type KillSwitchError struct {
	Reason string
}

func (e *KillSwitchError) Error() string { return fmt.Sprintf("%v: %s", ErrKillSwitch, e.Reason) }

func (e *KillSwitchError) Unwrap() error { return ErrKillSwitch }

// abortRecord is what Engage writes.
type abortRecord struct {
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	PID    int       `json:"pid"`
}

// Engage engages the kill switch of stateDir: every run watching it aborts.
// The file appears whole (written, fsynced, renamed), so a watcher never
// reads half a reason.
func Engage(stateDir, reason string) error {
	if reason == "" {
		reason = "no reason given"
	}
	if err := EnsureStateDir(stateDir); err != nil {
		return fmt.Errorf("engage kill switch: %w", err)
	}
	data, err := json.Marshal(abortRecord{Reason: reason, Time: time.Now().UTC(), PID: os.Getpid()})
	if err != nil {
		return fmt.Errorf("engage kill switch: %w", err)
	}
	if err := writeFileAtomic(stateDir, abortFile, append(data, '\n')); err != nil {
		return fmt.Errorf("engage kill switch: %w", err)
	}
	return nil
}

// Clear disengages the kill switch, so runs may start again. Clearing a
// switch that is not engaged is not an error.
func Clear(stateDir string) error {
	err := os.Remove(filepath.Join(stateDir, abortFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear kill switch: %w", err)
	}
	return nil
}

// Engaged reports whether the kill switch of stateDir is engaged, and why.
// The file's presence is what counts: one that cannot be read, or that a
// person wrote by hand, still engages it.
func Engaged(stateDir string) (reason string, engaged bool, err error) {
	path := filepath.Join(stateDir, abortFile)
	// Not followed if it is a symlink: the switch is then engaged (the
	// file is there) and its target is never read.
	data, err := readNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		if _, serr := os.Lstat(path); serr != nil {
			return "", false, fmt.Errorf("read kill switch: %w", err)
		}
		return fmt.Sprintf("abort file %s present but unreadable: %v", path, err), true, nil
	}
	var rec abortRecord
	if json.Unmarshal(data, &rec) == nil && rec.Reason != "" {
		return rec.Reason, true, nil
	}
	if s := strings.TrimSpace(string(data)); s != "" {
		return s, true, nil
	}
	return "abort file " + path + " present", true, nil
}

// Watch calls abort, at most once, as soon as the kill switch of stateDir
// is engaged (already engaged counts), until ctx ends; the cause is a
// *KillSwitchError. It returns nil when ctx ends, and an error only if it
// cannot watch at all (the state directory cannot be created). The caller
// runs it in a goroutine it owns and waits for it.
//
// It listens with inotify, so an Engage is seen as soon as the rename lands,
// and re-checks every few seconds in case an event is lost. Where inotify is
// unavailable (or the directory is removed from under it) it polls every
// 250ms instead.
func Watch(ctx context.Context, stateDir string, abort func(error)) error {
	return watch(ctx, stateDir, abort, watchConfig{
		inotify: true,
		poll:    250 * time.Millisecond,
		recheck: 5 * time.Second,
	})
}

type watchConfig struct {
	inotify bool          // false forces the poll fallback
	poll    time.Duration // the fallback's interval
	recheck time.Duration // with inotify, the interval of the safety re-check
	// ready, if set, is called once the watch is in place and the first
	// check found the switch off: from then on an Engage is seen by the
	// watch itself. Tests use it to engage at the right moment.
	ready func()
}

func watch(ctx context.Context, stateDir string, abort func(error), cfg watchConfig) error {
	if err := EnsureStateDir(stateDir); err != nil {
		return fmt.Errorf("watch kill switch: %w", err)
	}
	check := func() bool {
		if ctx.Err() != nil {
			return false
		}
		reason, engaged, err := Engaged(stateDir)
		if err != nil || !engaged {
			// An unreadable state directory is checked again at the next
			// event or tick; there is nothing better to do here.
			return false
		}
		abort(&KillSwitchError{Reason: reason})
		return true
	}
	ready := func() {
		if cfg.ready != nil {
			cfg.ready()
			cfg.ready = nil
		}
	}

	if cfg.inotify {
		// The watch goes in before the first check, so an Engage between
		// the two is not missed.
		if in := openInotify(stateDir); in != nil {
			if watchInotify(ctx, in, cfg.recheck, check, ready) {
				<-ctx.Done()
				return nil
			}
		}
	}

	if check() {
		<-ctx.Done()
		return nil
	}
	ready()
	t := time.NewTicker(cfg.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if check() {
				<-ctx.Done()
				return nil
			}
		}
	}
}

// openInotify returns an inotify instance watching dir for files appearing
// or finishing a write, or nil if inotify is unavailable.
func openInotify(dir string) *os.File {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_ONLYDIR); err != nil {
		_ = unix.Close(fd)
		return nil
	}
	// A non-blocking fd goes to the runtime poller, so Read parks the
	// goroutine rather than a thread, honours read deadlines, and returns
	// when the file is closed.
	return os.NewFile(uintptr(fd), "inotify:"+dir)
}

// watchInotify reads events from in until the switch is found engaged or
// ctx ends (true), or until inotify stops working (false: poll instead).
// It closes in before it returns.
func watchInotify(ctx context.Context, in *os.File, recheck time.Duration, check func() bool, ready func()) bool {
	// Closing the file is what wakes a Read blocked in the poller when ctx
	// ends. The closer is waited for, so no goroutine outlives Watch.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = in.Close()
		close(closed)
	})
	defer func() {
		if stop() {
			_ = in.Close()
		} else {
			<-closed
		}
	}()

	if check() {
		return true
	}
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		if err := in.SetReadDeadline(time.Now().Add(recheck)); err != nil {
			// Not in the poller (or already closed): a Read could block
			// past ctx, so fall back to polling.
			return ctx.Err() != nil
		}
		ready()
		n, err := in.Read(buf)
		switch {
		case ctx.Err() != nil:
			return true
		case errors.Is(err, os.ErrDeadlineExceeded):
			if check() {
				return true
			}
		case err != nil:
			return false
		default:
			relevant, gone := scanEvents(buf[:n])
			if relevant && check() {
				return true
			}
			if gone {
				return false
			}
		}
	}
}

// scanEvents reads a batch of inotify events. relevant: the abort file
// appeared or was written, or events were lost; gone: the watch ended (the
// directory was removed or its filesystem unmounted).
func scanEvents(b []byte) (relevant, gone bool) {
	for off := 0; off+unix.SizeofInotifyEvent <= len(b); {
		mask := binary.NativeEndian.Uint32(b[off+4:])
		n := int(binary.NativeEndian.Uint32(b[off+12:]))
		end := off + unix.SizeofInotifyEvent + n
		if end > len(b) {
			break
		}
		name := strings.TrimRight(string(b[off+unix.SizeofInotifyEvent:end]), "\x00")
		if mask&unix.IN_Q_OVERFLOW != 0 || name == abortFile {
			relevant = true
		}
		if mask&unix.IN_IGNORED != 0 {
			gone = true
		}
		off = end
	}
	return relevant, gone
}
