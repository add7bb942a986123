package safety_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/chaos-run/chaos/safety"
)

// The test binary doubles as the other process of the tests that need one
// (a runner holding a lock or writing the ledger, `chaos abort` from
// another process): with helperEnv set, TestMain runs that helper instead
// of the tests. These variables name what the helper does and on what.
const (
	helperEnv = "CHAOS_SAFETY_TEST_HELPER" // lock, intend or engage
	dirEnv    = "CHAOS_SAFETY_TEST_DIR"    // the state directory
	runEnv    = "CHAOS_SAFETY_TEST_RUN"    // the run id
	keysEnv   = "CHAOS_SAFETY_TEST_KEYS"   // comma-separated target keys
	reasonEnv = "CHAOS_SAFETY_TEST_REASON" // the kill switch reason
)

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		if err := runHelper(h); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", h, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runHelper does its job, prints "ready" and, for the helpers that hold
// something, keeps holding it until stdin closes or the process is killed.
func runHelper(name string) error {
	dir, run := os.Getenv(dirEnv), os.Getenv(runEnv)
	switch name {
	case "lock":
		lock, err := safety.LockTargets(dir, strings.Split(os.Getenv(keysEnv), ","), run)
		if err != nil {
			return err
		}
		// Held until the process ends; the deferred Release also keeps the
		// files reachable, so no finalizer closes them early.
		defer lock.Release()
	case "intend":
		l, err := safety.OpenLedger(dir)
		if err != nil {
			return err
		}
		err = l.Intend(safety.Entry{
			ID: run + "/fault-0", RunID: run, Plugin: "latency", TargetKey: os.Getenv(keysEnv),
		})
		if err != nil {
			return err
		}
	case "holdledger":
		// A runner stopped in the middle of a ledger write: it holds the
		// ledger's lock.
		f, err := os.OpenFile(filepath.Join(dir, "ledger.lock"), os.O_RDONLY|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return err
		}
	case "engage":
		return safety.Engage(dir, os.Getenv(reasonEnv))
	case "ignoreterm":
		// A plugin that does not act on SIGTERM: only SIGKILL ends it.
		signal.Ignore(syscall.SIGTERM)
	case "idle":
		// A process that ends on SIGTERM, as the default action does.
	default:
		return fmt.Errorf("unknown helper")
	}
	fmt.Println("ready")
	// A blocking read of a pipe: the process holds what it took until the
	// test kills it or, if the test itself dies, until the pipe closes.
	_, err := io.Copy(io.Discard, os.Stdin)
	return err
}

// startHelper starts the test binary as helper name with env added, and
// returns once the helper says it holds what it took. The process is
// killed and reaped at the end of the test if the test did not do it.
func startHelper(t *testing.T, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+name)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "the helper process must start")
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the helper %s must report ready (see its stderr above)", name)
	require.Equal(t, "ready\n", line)
	return cmd
}

// killHelper SIGKILLs a helper and waits until it is reaped: by then the
// kernel has closed its files and dropped its flocks.
func killHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Kill())
	err := cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the helper must die of the SIGKILL, not exit on its own")
	require.False(t, exit.Exited(), "the helper must have been killed by a signal")
}
