package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// markedFileFault is a fileFault whose faults outlive its process and which
// marks each with its injection id (a marker file naming the fault's file),
// as an nftables plugin would mark its rules: a fresh instance reverts by
// id with no memory (sdk.RevertByID).
type markedFileFault struct {
	fileFault
	marks string // directory of the markers
}

func (f markedFileFault) marker(id string) string {
	return filepath.Join(f.marks, strings.ReplaceAll(id, "/", "_"))
}

func (f markedFileFault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if req.ID != "" {
		if err := os.WriteFile(f.marker(req.ID), []byte(path(req)), 0o600); err != nil {
			return "", err
		}
	}
	return f.fileFault.Inject(ctx, req)
}

func (f markedFileFault) RevertByID(ctx context.Context, id string) (bool, error) {
	b, err := os.ReadFile(f.marker(id))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	was, err := f.Revert(ctx, string(b))
	if err == nil {
		err = os.Remove(f.marker(id))
	}
	return was, err
}

// TestConformanceRevertByID: a plugin whose faults outlive its process
// passes the same suite, and a restarted instance reverts by id alone.
func TestConformanceRevertByID(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fault")
	marks := t.TempDir()
	f := markedFileFault{marks: marks}
	c := sdktest.Connect(t, f)
	d, err := c.Describe(t.Context())
	require.NoError(t, err)
	require.True(t, d.CanRevertByID, "Describe must say the plugin reverts by id")
	require.False(t, d.CanResolve, "the plugin does not resolve; the SDK answers for it")
	sdktest.Run(t, f, sdktest.Case{
		Request: func(*testing.T) sdk.Request { return request(file) },
		Fresh:   func() sdk.Fault { return markedFileFault{marks: marks} },
		Check: func(t *testing.T, active bool) {
			_, err := os.Stat(file)
			require.Equal(t, active, err == nil, "the fault file exists exactly while the fault is active")
		},
	})
}

// TestPreparedPrefixIsTheSDKs: the SDK marks a preparation's handle on the
// wire and takes the mark off before the plugin sees the handle again.
func TestPreparedPrefixIsTheSDKs(t *testing.T) {
	f := &recordingPreparer{}
	c := sdktest.Connect(t, f)
	h, err := c.Prepare(t.Context(), request(filepath.Join(t.TempDir(), "p")))
	require.NoError(t, err)
	require.Equal(t, sdk.PreparedPrefix+"ready", h, "the host sees a prepared handle marked")
	_, err = c.Inject(t.Context(), sdk.Request{Target: sdk.Target{Name: "h", Kind: "host"}, Prepared: h, Params: json.RawMessage(`{"path":"` + filepath.Join(t.TempDir(), "f") + `"}`)})
	require.NoError(t, err)
	_, err = c.Revert(t.Context(), h)
	require.NoError(t, err)
	require.Equal(t, []string{"ready"}, f.prepared, "Inject gets the plugin's own handle of the preparation")
	require.Contains(t, f.reverted, "ready", "Revert gets the plugin's own handle, unmarked")
}

type recordingPreparer struct {
	fileFault
	mu                 sync.Mutex
	prepared, reverted []string
}

func (p *recordingPreparer) Prepare(context.Context, sdk.Request) (string, error) {
	return "ready", nil
}

func (p *recordingPreparer) Inject(ctx context.Context, req sdk.Request) (string, error) {
	p.mu.Lock()
	p.prepared = append(p.prepared, req.Prepared)
	p.mu.Unlock()
	return p.fileFault.Inject(ctx, req)
}

func (p *recordingPreparer) Revert(ctx context.Context, h string) (bool, error) {
	p.mu.Lock()
	p.reverted = append(p.reverted, h)
	p.mu.Unlock()
	if h == "ready" {
		return true, nil
	}
	return p.fileFault.Revert(ctx, h)
}
