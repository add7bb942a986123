package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startAlertmanager starts the real Alertmanager (Debian
// prometheus-alertmanager; scripts/deps.sh installs it) on a free loopback
// port with a config and storage of the test's own, and returns its URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		bin, err = exec.LookPath("alertmanager")
	}
	if err != nil {
		t.Skip("no Alertmanager installed (Debian prometheus-alertmanager; scripts/deps.sh installs it)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfg, []byte("route: {receiver: nobody}\nreceivers: [{name: nobody}]\n"), 0o644))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager did not get ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a process's readiness, not waiting for a schedule
	}
}

// postAlert posts a firing alert, as Prometheus would.
func postAlert(t *testing.T, url string, labels map[string]string) {
	t.Helper()
	body, err := json.Marshal([]map[string]any{{
		"labels":   labels,
		"startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339),
		"endsAt":   time.Now().Add(time.Hour).Format(time.RFC3339),
	}})
	require.NoError(t, err)
	resp, err := http.Post(url+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the alert is accepted")
}

// TestAlertmanagerFiring asks a real Alertmanager: nothing firing, then a
// real alert posted to it for the service, which only the entry whose
// labels match sees.
func TestAlertmanagerFiring(t *testing.T) {
	url := startAlertmanager(t)
	am := &Alertmanager{URL: url, Timeout: 5 * time.Second}
	names, err := am.Firing(t.Context(), map[string]string{"service": "checkout"})
	require.NoError(t, err)
	require.Empty(t, names, "no alert yet")

	postAlert(t, url, map[string]string{"alertname": "CheckoutErrors", "service": "checkout", "severity": "page"})
	names, err = am.Firing(t.Context(), map[string]string{"service": "checkout"})
	require.NoError(t, err)
	require.Equal(t, []string{"CheckoutErrors"}, names, "the posted alert is an open incident for checkout")

	names, err = am.Firing(t.Context(), map[string]string{"service": "search"})
	require.NoError(t, err)
	require.Empty(t, names, "another service's alert does not stop this entry")
}

// TestAlertmanagerUnreachable: an Alertmanager that accepts the connection
// and never answers is given up on after its timeout, as an error.
func TestAlertmanagerUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range held {
			_ = c.Close()
		}
	})
	am := &Alertmanager{URL: "http://" + l.Addr().String(), Timeout: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = am.Firing(ctx, map[string]string{"service": "checkout"})
	require.ErrorIs(t, err, ErrAlertmanager, "no answer is an error, never 'no incident'")
	require.NoError(t, ctx.Err(), "the call was bounded by its own timeout")
}
