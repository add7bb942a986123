package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLiveViewInATerminal runs the real binary in a real terminal (tmux):
// while the fault is live the view shows the phase, the fault with its
// time left, the probe's latest values and the budget, redrawn in place;
// at the end the verdict is printed below it. The probe's URL holds a
// secret, which must not show on the screen.
func TestLiveViewInATerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (scripts/deps.sh installs it when run as root): the live view is not tested in a terminal")
	}
	bin := buildBinaries(t)
	dir := t.TempDir()

	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer svc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	proxy := ln.Addr().String()
	require.NoError(t, ln.Close())

	const secret = "v1ew-5ecr3t-Qm3Zp8Lk2Wd"
	exp := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: view-test
  owner: {team: web-team}
spec:
  hypothesis: The service answers while its link is slower.
  targets:
    link:
      endpoint: {listen: "%s", upstream: "%s"}
  probes:
    svc: {http: {url: "%s/health?token=${env:VIEW_TOKEN}"}, every: 200ms, timeout: 2s}
  steadyState:
    - svc.status == 200
  faults:
    - {plugin: latency, target: link, with: {delay: 5ms}, after: 500ms, for: 4s}
`, proxy, svc.Listener.Addr(), svc.URL)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "exp.yaml"), []byte(exp), 0o644))
	// The secret is in a script, not typed: keys sent to the terminal
	// would echo on the screen.
	script := fmt.Sprintf("export VIEW_TOKEN='%s' XDG_STATE_HOME='%s'\nclear\n'%s' run exp.yaml\necho EXIT=$?\n",
		secret, filepath.Join(dir, ".state"), filepath.Join(bin, "chaos"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o644))

	// A server of its own, so that the test never touches anyone's tmux.
	sock := filepath.Join(dir, "tmux.sock")
	tm := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		require.NoError(t, err, "tmux %v: %s", args, out)
		return string(out)
	}
	tm("new-session", "-d", "-s", "view", "-x", "120", "-y", "40", "-c", dir, "sh")
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", sock, "kill-server").Run() })
	tm("send-keys", "-t", "view", "sh run.sh", "Enter")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// waitFor polls the screen until it shows every want; a deadline bounds
	// it, and nothing here asserts how fast the run is.
	waitFor := func(what string, want ...string) string {
		t.Helper()
		for {
			pane := tm("capture-pane", "-p", "-t", "view")
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(pane, w)
			}
			if ok {
				return pane
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the terminal never showed %s; last screen:\n%s", what, pane)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	live := waitFor("the live view with the fault live",
		"chaos run view-test", "phase: fault phase", "fault latency on link: live,", "s left", "probe svc: ok", "status=200", "budget:")
	t.Logf("screen while the fault is live:\n%s", live)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "live.txt"), []byte(live), 0o644))
	require.Equal(t, 1, strings.Count(live, "phase: "), "the view is redrawn in place, not scrolled")

	final := waitFor("the verdict and exit code", "EXIT=0")
	t.Logf("screen at the end:\n%s", final)
	require.Contains(t, final, "view-test: passed", "the verdict is printed after the view")
	require.Contains(t, final, "fault latency on link: reverted", "the view's last state stays on the screen")
	require.Equal(t, 1, strings.Count(final, "phase: "), "one view, drawn in place")
	for _, p := range secretPieces(secret) {
		require.NotContains(t, live+final, p, "the live view never shows a secret")
	}
}
