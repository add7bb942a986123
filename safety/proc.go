package safety

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessStart returns when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat). A pid and its start time name one process
// for good: the kernel may give the pid to another process later, never
// with the same start time.
func ProcessStart(pid int) (uint64, error) {
	start, _, err := procStat(pid)
	return start, err
}

// procStat reads the start time and the state letter of process pid.
func procStat(pid int) (start uint64, state byte, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("no process %d", pid)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself; the fields after the last ')' are plain.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := bytes.Fields(data[i+1:])
	// fields[0] is field 3 (state); field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, fields[0][0], nil
}

// IsProcess reports whether the process pid that started at start is still
// running. A zombie has ended; an unknown start time (zero) is never
// confirmed, so a pid that may have been recycled is never taken for the
// process that once had it.
func IsProcess(pid int, start uint64) bool {
	if pid <= 0 || start == 0 {
		return false
	}
	got, state, err := procStat(pid)
	return err == nil && got == start && state != 'Z' && state != 'X'
}

// StopResult says how StopProcess ended a process.
type StopResult int

// The ways StopProcess can find or end a process.
const (
	// AlreadyGone: the process was not running (or was another process).
	AlreadyGone StopResult = iota
	// Terminated: it exited after SIGTERM, within the grace period.
	Terminated
	// Killed: it ignored SIGTERM for the grace period and got SIGKILL.
	Killed
)

func (r StopResult) String() string {
	switch r {
	case AlreadyGone:
		return "already gone"
	case Terminated:
		return "exited on SIGTERM"
	case Killed:
		return "killed with SIGKILL after ignoring SIGTERM"
	}
	return "unknown"
}

// ErrProcessSurvived means a process was still there after SIGKILL.
var ErrProcessSurvived = errors.New("process survived SIGKILL")

// StopProcess ends the process pid that started at start: SIGCONT (a
// stopped process cannot act on SIGTERM), SIGTERM, and SIGKILL if it has
// not exited after grace. It signals through a pidfd opened after the
// identity check, so a pid recycled meanwhile is never signalled, and waits
// on that pidfd rather than polling. An unknown start time (zero) is never
// signalled: AlreadyGone is not claimed for it either, it is an error.
func StopProcess(ctx context.Context, pid int, start uint64, grace time.Duration) (StopResult, error) {
	if pid <= 0 {
		return AlreadyGone, nil
	}
	if start == 0 {
		return AlreadyGone, fmt.Errorf("process %d: its start time was not recorded, so it cannot be told from a process that reused its pid; check it by hand", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return AlreadyGone, nil
		}
		return AlreadyGone, fmt.Errorf("process %d: pidfd_open: %w", pid, err)
	}
	defer unix.Close(fd)
	// Checked after the pidfd is open: from here on the fd names exactly
	// the process that was checked.
	if !IsProcess(pid, start) {
		return AlreadyGone, nil
	}
	_ = unix.PidfdSendSignal(fd, unix.SIGCONT, nil, 0)
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); errors.Is(err, unix.ESRCH) {
		return AlreadyGone, nil
	}
	exited, err := waitPidfd(ctx, fd, grace)
	if err != nil {
		return AlreadyGone, fmt.Errorf("process %d: %w", pid, err)
	}
	if exited {
		return Terminated, nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); errors.Is(err, unix.ESRCH) {
		return Terminated, nil
	}
	// SIGKILL cannot be ignored; the wait only covers the kernel tearing
	// the process down (a process in uninterruptible sleep takes longer).
	exited, err = waitPidfd(ctx, fd, killWait)
	if err != nil {
		return Killed, fmt.Errorf("process %d: %w", pid, err)
	}
	if !exited {
		return Killed, fmt.Errorf("process %d, %s after SIGKILL: %w", pid, killWait, ErrProcessSurvived)
	}
	return Killed, nil
}

// killWait bounds the wait for a SIGKILLed process to end.
const killWait = 5 * time.Second

// waitPidfd waits until the process of fd has exited (true), limit has
// passed (false) or ctx ends (its cause).
func waitPidfd(ctx context.Context, fd int, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		// Slices of at most 100ms, so that ctx is honoured.
		slice := min(time.Until(deadline), 100*time.Millisecond)
		if slice < 0 {
			slice = 0
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(slice.Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return false, fmt.Errorf("wait for exit: %w", err)
		case n > 0:
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, context.Cause(ctx)
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
	}
}
