package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/plugins/sdk/sdktest"
)

// fileFault is a fault whose effect is a file: inject creates it, revert
// removes it. Real, visible from outside the plugin process, and harmless.
type fileFault struct{}

func (fileFault) Describe() sdk.Description {
	return sdk.Description{Name: "file", Version: "1.0.0", TargetKinds: []string{"host"}, ParamsSchema: json.RawMessage(`{"type":"object"}`)}
}

func (fileFault) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	if path(req) == "" {
		return []sdk.ParamProblem{{Param: "path", Message: "path is required"}}
	}
	return nil
}

func path(req sdk.Request) string {
	var p struct{ Path string }
	_ = json.Unmarshal(req.Params, &p)
	return p.Path
}

func (fileFault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return path(req), os.WriteFile(path(req), []byte("fault"), 0o600)
}

func (fileFault) Revert(_ context.Context, h string) (bool, error) {
	err := os.Remove(h)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// TestMain lets this test binary serve fileFault as a real plugin process.
func TestMain(m *testing.M) {
	switch os.Getenv("SDK_TEST_SERVE") {
	case "1":
		_ = sdk.Serve(context.Background(), fileFault{})
		return
	case "panic":
		_ = sdk.Serve(context.Background(), buggyFault{})
		return
	}
	os.Exit(m.Run())
}

func launch(t *testing.T) *sdk.Plugin {
	t.Helper()
	return launchServing(t, "1")
}

// launchServing starts this test binary as a plugin process serving what
// serve names (see TestMain).
func launchServing(t *testing.T, serve string) *sdk.Plugin {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SDK_TEST_SERVE="+serve)
	p, err := sdk.Launch(t.Context(), cmd, sdk.LaunchOptions{})
	require.NoError(t, err, "the plugin process must start and complete the handshake")
	t.Cleanup(p.Close)
	return p
}

func request(file string) sdk.Request {
	b, _ := json.Marshal(map[string]string{"path": file})
	return sdk.Request{Target: sdk.Target{Name: "h", Kind: "host"}, Params: b}
}

func TestConformance(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fault")
	sdktest.Run(t, fileFault{}, sdktest.Case{
		Request: func(*testing.T) sdk.Request { return request(file) },
		Invalid: map[string]sdk.Request{"no path": {Target: sdk.Target{Kind: "host"}, Params: json.RawMessage(`{}`)}},
		Fresh:   func() sdk.Fault { return fileFault{} },
		Check: func(t *testing.T, active bool) {
			_, err := os.Stat(file)
			require.Equal(t, active, err == nil, "the fault file exists exactly while the fault is active")
		},
	})
}

func TestLaunchOverRealProcess(t *testing.T) {
	p := launch(t)
	d, err := p.Fault.Describe(t.Context())
	require.NoError(t, err)
	require.Equal(t, "file", d.Name)
	require.False(t, d.CanPrepare, "fileFault does not implement Preparer")

	file := filepath.Join(t.TempDir(), "fault")
	h, err := p.Fault.Inject(t.Context(), request(file))
	require.NoError(t, err)
	require.FileExists(t, file)
	was, err := p.Fault.Revert(t.Context(), h)
	require.NoError(t, err)
	require.True(t, was)
	require.NoFileExists(t, file)
}

// A plugin process that dies is one typed error on the host side.
func TestDeadPluginIsErrPluginExited(t *testing.T) {
	p := launch(t)
	pid := p.Pid()
	require.NotZero(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, p.Exited, 10*time.Second, 10*time.Millisecond, "the host must notice the plugin died")
	_, err := p.Fault.Inject(t.Context(), request(filepath.Join(t.TempDir(), "f")))
	require.ErrorIs(t, err, sdk.ErrPluginExited)
}

// A plugin whose host goes away reverts what it holds: closing the plugin
// (the host's normal goodbye) and SIGTERM (what the kernel sends when the
// host dies) both leave nothing behind.
func TestPluginRevertsWhenHostLeaves(t *testing.T) {
	for name, leave := range map[string]func(*sdk.Plugin){
		"close":   func(p *sdk.Plugin) { p.Close() },
		"sigterm": func(p *sdk.Plugin) { _ = syscall.Kill(p.Pid(), syscall.SIGTERM) },
	} {
		t.Run(name, func(t *testing.T) {
			p := launch(t)
			file := filepath.Join(t.TempDir(), "fault")
			_, err := p.Fault.Inject(t.Context(), request(file))
			require.NoError(t, err)
			require.FileExists(t, file)
			leave(p)
			require.Eventually(t, p.Exited, 10*time.Second, 10*time.Millisecond, "the plugin must exit")
			require.NoFileExists(t, file, "the plugin must revert its fault before it exits")
		})
	}
}
