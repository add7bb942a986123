package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitLimit bounds every wait of these tests: for a process to start, to say
// something or to exit. It is generous on purpose. It only matters when
// something is broken, and then the test fails with what it was waiting for
// instead of hanging; a busy machine must never make a healthy run fail.
const waitLimit = 2 * time.Minute

// bins are the binaries under test, built once by TestMain.
type bins struct {
	chaos, demo string
}

// built is set by TestMain before any test runs and only read after.
var built bins

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chaos-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// chaos finds itself through /proc/self/exe to start its plugins, which
	// has every symlink resolved; the process scans compare against that.
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/chaos-run/chaos/cmd/chaos", "github.com/chaos-run/chaos/cmd/demo-shop")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build chaos and demo-shop: %v\n%s", err, out)
		return 1
	}
	built = bins{chaos: filepath.Join(dir, "chaos"), demo: filepath.Join(dir, "demo-shop")}
	return m.Run()
}

// output collects what a process writes and wakes up whoever waits for a
// particular line.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// line returns the first complete line containing s, and a channel that is
// closed at the next write.
func (o *output) line(s string) (string, bool, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	text := o.buf.String()
	for {
		nl := strings.IndexByte(text, '\n')
		if nl < 0 {
			return "", false, o.changed
		}
		if l := text[:nl]; strings.Contains(l, s) {
			return l, true, o.changed
		}
		text = text[nl+1:]
	}
}

// process is a started binary whose output is collected.
type process struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *output
	exited         chan struct{} // closed when Wait returned; err is set then
	err            error
}

// start starts bin with args, with a state directory of its own. Whatever
// happens to the test, the process is killed and waited for when it ends, so
// a failed test leaves nothing behind.
func start(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{
		name:   filepath.Base(bin),
		cmd:    exec.Command(bin, args...),
		stdout: newOutput(),
		stderr: newOutput(),
		exited: make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	// chaos keeps its ledger and target locks in $XDG_STATE_HOME/chaos: a
	// test must neither write into the state of whoever runs it nor share
	// locks with other tests.
	p.cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	require.NoError(t, p.cmd.Start(), "start %s", bin)
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitLine waits until the process writes a line containing s to the given
// output and returns it. It fails the test if the process exits first or
// nothing comes within waitLimit.
func (p *process) waitLine(t *testing.T, out *output, s string) string {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		l, ok, changed := out.line(s)
		if ok {
			return l
		}
		select {
		case <-changed:
		case <-p.exited:
			// Wait returns after all output was copied: one last look.
			if l, ok, _ := out.line(s); ok {
				return l
			}
			require.FailNowf(t, p.name+" exited before saying what the test waits for",
				"waiting for a line with %q; %v\nstdout:\n%s\nstderr:\n%s", s, p.err, p.stdout, p.stderr)
		case <-deadline.C:
			require.FailNowf(t, p.name+" did not say what the test waits for",
				"no line with %q within %s\nstdout:\n%s\nstderr:\n%s", s, waitLimit, p.stdout, p.stderr)
		}
	}
}

// exitCode waits for the process to exit and returns its exit code.
func (p *process) exitCode(t *testing.T) int {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	select {
	case <-p.exited:
	case <-deadline.C:
		require.FailNowf(t, p.name+" did not exit", "still running after %s\nstdout:\n%s\nstderr:\n%s",
			waitLimit, p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err, "wait for %s", p.name)
	return 0
}

// startDemo starts demo-shop with the given flags, waits until it says it is
// ready, and returns the addresses of its front and backend. The demo is
// stopped with SIGINT when the test ends and must shut down cleanly.
func startDemo(t *testing.T, args ...string) (front, backend string) {
	t.Helper()
	p := start(t, built.demo, args...)
	t.Cleanup(func() {
		select {
		case <-p.exited:
			t.Errorf("demo-shop exited during the test: %v\nstderr:\n%s", p.err, p.stderr)
			return
		default:
		}
		if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Errorf("stop demo-shop: %v", err)
			return
		}
		if code := p.exitCode(t); code != 0 {
			t.Errorf("demo-shop exited with %d after SIGINT, want 0 (a clean shutdown)\nstderr:\n%s", code, p.stderr)
		}
	})
	line := p.waitLine(t, p.stdout, "ready ")
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "front":
			front = v
		case "backend":
			backend = v
		}
	}
	require.NotEmpty(t, front, "demo-shop's ready line names its front address: %q", line)
	require.NotEmpty(t, backend, "demo-shop's ready line names its backend address: %q", line)
	return front, backend
}

// requireFree fails the test at once if something listens on addr: the
// examples use fixed ports, and a run against someone else's listener
// would test that instead of the demo.
func requireFree(t *testing.T, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err, "%s is busy, but the example experiments need it: stop whatever listens there (a demo-shop left running?) and run the tests again", addr)
		require.NoError(t, ln.Close())
	}
}

// freeAddr returns a loopback address that was free a moment ago, for a
// listener that a chaos run stands later.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// requireRefused checks that nothing accepts connections on addr. It is
// called after a chaos run exited, when the answer is settled, so it does
// not retry.
func requireRefused(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		_ = conn.Close()
	}
	require.ErrorIs(t, err, syscall.ECONNREFUSED,
		"after the run, nothing may listen on the proxy address %s: a proxy left behind keeps the fault alive", addr)
}

// pluginProcess is a running `chaos plugin serve` process.
type pluginProcess struct {
	pid, ppid int
	cmdline   []string
}

// pluginProcesses lists the live plugin processes of the chaos binary under
// test, found in /proc by their command line. Other builds of chaos (other
// test packages running at the same time) have another path and are not
// listed. A zombie has an empty command line, so a plugin that exited but
// was not reaped yet is not listed either.
func pluginProcesses(t *testing.T) []pluginProcess {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err, "these tests find plugin processes in /proc")
	var found []pluginProcess
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Processes come and go while we read: one that is gone is not ours.
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		if len(args) < 3 || args[0] != built.chaos || args[1] != "plugin" || args[2] != "serve" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		found = append(found, pluginProcess{pid: pid, ppid: parentPID(stat), cmdline: args})
	}
	return found
}

// parentPID reads the parent's pid from /proc/PID/stat: "pid (comm) state
// ppid ...", where comm may hold spaces and parentheses.
func parentPID(stat []byte) int {
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// requireNoPlugins checks that no plugin process of the binary under test
// is alive. chaos waits for its plugins before it exits, so after a run
// there is nothing to wait for.
func requireNoPlugins(t *testing.T) {
	t.Helper()
	require.Empty(t, pluginProcesses(t), "after the run, no `chaos plugin serve` process may be left: a plugin left running may still hold a fault")
}

// pluginOf returns the one plugin process that the chaos process parent
// started.
func pluginOf(t *testing.T, parent *process) pluginProcess {
	t.Helper()
	var mine []pluginProcess
	for _, p := range pluginProcesses(t) {
		if p.ppid == parent.cmd.Process.Pid {
			mine = append(mine, p)
		}
	}
	require.Len(t, mine, 1, "the run has started exactly one plugin process (latency)")
	return mine[0]
}
