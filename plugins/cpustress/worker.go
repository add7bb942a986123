package cpustress

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// workerArg0 is the argv[0] every worker carries, the first part of its
// marker; argv[4] is its handle and argv[5] its injection id ("-" for none).
const workerArg0 = "chaos-cpustress-worker"

// workerScript stops itself before it burns anything, so the plugin can put
// it in its cgroups first; then it is a busy loop of builtins (no system
// calls), run and stopped by the plugin.
const workerScript = `kill -STOP $$; while :; do :; done`

// shell runs the workers.
const shell = "/bin/sh"

// stress is one injection: its workers and the loops that hold their load.
type stress struct {
	handle, id string
	params     Params
	cgroups    []cgroup
	workers    []*worker
	cancel     context.CancelFunc
	loops      sync.WaitGroup
	stopOnce   sync.Once
	stopped    bool
}

// worker is one burner process.
type worker struct {
	proc  *os.Process
	pid   int
	clock int32         // the process's CPU clock (clock_getcpuclockid)
	done  chan struct{} // closed once the process is reaped
}

// startStress starts the workers of one injection, places them in the
// cgroups while they are stopped, and starts the loops that hold the load.
// On any error every worker started is killed.
func startStress(ctx context.Context, handle, id string, p Params, cgroups []cgroup) (*stress, error) {
	if _, err := os.Stat(shell); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoShell, err)
	}
	s := &stress{handle: handle, id: id, params: p, cgroups: cgroups}
	fail := func(err error) (*stress, error) {
		s.stop(context.WithoutCancel(ctx))
		return nil, err
	}
	for range p.workerCount() {
		w, err := startWorker(handle, id)
		if err != nil {
			return fail(err)
		}
		s.workers = append(s.workers, w)
		if err := w.waitStopped(ctx); err != nil {
			return fail(err)
		}
		for _, c := range cgroups {
			procs := filepath.Join(c.dir(), "cgroup.procs")
			if err := os.WriteFile(procs, []byte(strconv.Itoa(w.pid)), 0); err != nil {
				return fail(fmt.Errorf("%w %s: %w", ErrCannotJoin, c, err))
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	// The loops outlive the call that started them; the revert ends them.
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	guard := sdk.Guard(ctx)
	started := make(chan struct{}, len(s.workers))
	start := time.Now()
	for _, w := range s.workers {
		s.loops.Go(func() {
			defer guard()
			hold(lctx, w, p, start, started)
		})
	}
	for range s.workers {
		<-started
	}
	return s, nil
}

// startWorker starts one worker process. It dies with the plugin: the
// kernel sends it SIGKILL when the plugin's thread that started it exits,
// and Go ends a thread only with a goroutine locked to it, which nothing in
// this plugin does.
func startWorker(handle, id string) (*worker, error) {
	if id == "" {
		id = "-"
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	defer devnull.Close()
	proc, err := os.StartProcess(shell, []string{workerArg0, "-c", workerScript, "chaos-cpustress", handle, id}, &os.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []*os.File{devnull, devnull, devnull},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w := &worker{proc: proc, pid: proc.Pid, clock: int32((^proc.Pid)<<3 | 2), done: make(chan struct{})}
	// Reap it whenever it ends, so it never lingers as a zombie; this
	// goroutine ends with the process, which the revert kills.
	go func() {
		_, _ = proc.Wait()
		close(w.done)
	}()
	return w, nil
}

// waitStopped waits for a new worker to stop itself (state T), which it does
// before it burns anything.
func (w *worker) waitStopped(ctx context.Context) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		st, err := procState(w.pid)
		switch {
		case err != nil:
			return fmt.Errorf("worker %d: %w", w.pid, err)
		case st == 'T':
			return nil
		case st == 'Z' || st == 'X':
			return fmt.Errorf("worker %d exited before it started (is %s a POSIX shell?)", w.pid, shell)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return fmt.Errorf("worker %d exited before it started", w.pid)
		case <-tick.C:
		}
	}
}

// cpu is the CPU time the worker has used, from the kernel's accounting.
func (w *worker) cpu() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(w.clock, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// stop kills every worker at once (SIGKILL works on stopped ones too), then
// ends the loops and waits for the workers to be reaped. It says whether
// anything was running.
func (s *stress) stop(ctx context.Context) bool {
	was := false
	s.stopOnce.Do(func() {
		for _, w := range s.workers {
			select {
			case <-w.done:
			default:
				was = true
			}
			_ = w.proc.Kill() // through a pidfd: never a recycled pid
		}
		if s.cancel != nil {
			s.cancel()
		}
		s.loops.Wait()
		for _, w := range s.workers {
			select {
			case <-w.done:
			case <-ctx.Done():
				return
			}
		}
		s.stopped = true
	})
	return was
}

// alive says whether any worker is still running.
func (s *stress) alive() bool {
	for _, w := range s.workers {
		select {
		case <-w.done:
		default:
			return true
		}
	}
	return false
}

func (s *stress) describe() string {
	where := "on the host"
	if len(s.cgroups) > 0 {
		where = "in " + describeCgroups(s.cgroups)
	}
	pids := make([]string, len(s.workers))
	for i, w := range s.workers {
		pids[i] = strconv.Itoa(w.pid)
	}
	return fmt.Sprintf("%d workers at %d%% of a core %s (pids %s)", len(s.workers), s.params.Load, where, strings.Join(pids, ","))
}

// procState is the state letter of /proc/PID/stat.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, errors.New("unexpected /proc stat format")
	}
	return b[i+2], nil
}

// marker is what a worker's command line says about it.
type marker struct {
	pid        int
	handle, id string
}

// markedWorkers lists the live workers of this user, whichever plugin
// process started them, by their command line.
func markedWorkers() []marker {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []marker
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if m, ok := readMarker(pid); ok {
			out = append(out, m)
		}
	}
	return out
}

// readMarker reads one process's marker, if it is a live worker of this
// user.
func readMarker(pid int) (marker, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.HasPrefix(b, []byte(workerArg0+"\x00")) {
		return marker{}, false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(args) != 6 || args[2] != workerScript {
		return marker{}, false
	}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d", pid), &st) != nil || int(st.Uid) != os.Geteuid() {
		return marker{}, false
	}
	if s, err := procState(pid); err != nil || s == 'Z' || s == 'X' {
		return marker{}, false
	}
	return marker{pid: pid, handle: args[4], id: args[5]}, true
}

// killMarked kills every live worker whose marker matches, through a pidfd
// opened before the marker is checked again (so a recycled pid is never
// signalled), and waits for each to end.
func killMarked(ctx context.Context, match func(marker) bool) (bool, error) {
	was := false
	var errs []error
	for _, m := range markedWorkers() {
		if !match(m) {
			continue
		}
		fd, err := unix.PidfdOpen(m.pid, 0)
		if err != nil {
			continue // gone already
		}
		if again, ok := readMarker(m.pid); !ok || again != m {
			_ = unix.Close(fd)
			continue
		}
		was = true
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill worker %d: %w", m.pid, err))
		} else if err := waitExit(ctx, fd); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", m.pid, err))
		}
		_ = unix.Close(fd)
	}
	return was, errors.Join(errs...)
}

// waitExit waits for the process of a pidfd to end (it becomes readable).
func waitExit(ctx context.Context, fd int) error {
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 10)
		if n > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
