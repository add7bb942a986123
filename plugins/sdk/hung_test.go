package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// A plugin process that stops answering (SIGSTOP, as a debugger or a
// frozen cgroup would) must not hang its host: a call with a deadline
// returns at the deadline, and Close and Kill end the process (SIGTERM,
// SIGCONT, SIGKILL) and return. The stopped plugin, resumed, handles the
// SIGTERM it was sent and reverts what it held.
func TestStoppedPluginDoesNotHangTheHost(t *testing.T) {
	for name, end := range map[string]func(*sdk.Plugin){
		"close": (*sdk.Plugin).Close,
		"kill":  (*sdk.Plugin).Kill,
	} {
		t.Run(name, func(t *testing.T) {
			p := launch(t)
			file := filepath.Join(t.TempDir(), "fault")
			h, err := p.Fault.Inject(t.Context(), request(file))
			require.NoError(t, err)
			require.FileExists(t, file)

			require.NoError(t, syscall.Kill(p.Pid(), syscall.SIGSTOP), "stop the plugin process")
			t.Cleanup(func() { _ = syscall.Kill(p.Pid(), syscall.SIGKILL) })
			waitStopped(t, p.Pid())
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			err = p.Fault.Renew(ctx, h, time.Minute)
			require.ErrorIs(t, err, context.DeadlineExceeded, "a renewal of a stopped plugin ends at its deadline")

			began := time.Now()
			end(p)
			t.Logf("%s returned after %s", name, time.Since(began))
			require.True(t, p.Exited(), "once %s returns, the plugin process is gone", name)
			require.NoFileExists(t, file, "the resumed plugin handled SIGTERM and reverted its fault")
		})
	}
}

// waitStopped waits until the kernel shows pid stopped: kill(2) returns
// before the signal is delivered, and a busy machine may let the process
// answer one more call in between.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	require.Eventually(t, func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		return err == nil && i > 0 && i+2 < len(stat) && stat[i+2] == 'T'
	}, time.Minute, time.Millisecond, "process %d stops after SIGSTOP", pid)
}
