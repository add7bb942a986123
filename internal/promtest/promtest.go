// Package promtest starts a real Prometheus for tests, on a free loopback
// port, scraping a metrics endpoint the test controls. Tests that need it
// skip, saying so, when the prometheus binary is not installed
// (scripts/deps.sh installs it). Only tests import it.
package promtest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Limit bounds the waits for Prometheus: to start, and to have scraped
// what a test needs. Generous, because it only matters when something is
// broken.
const Limit = time.Minute

// Require returns the path of the prometheus binary, or skips the
// test when it is not installed.
func Require(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed; scripts/deps.sh installs it (Debian package prometheus)")
	}
	return bin
}

// Counters is a metrics endpoint in the Prometheus text format whose
// counters the test sets: t_requests_total{code="200"} and {code="500"}.
type Counters struct {
	OK, Failed atomic.Int64
	URL        string
}

// StartCounters serves the counters, starting at ok and failed, until the
// test ends.
func StartCounters(t *testing.T, ok, failed int64) *Counters {
	t.Helper()
	c := &Counters{}
	c.OK.Store(ok)
	c.Failed.Store(failed)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE t_requests_total counter")
		fmt.Fprintf(w, "t_requests_total{code=\"200\"} %d\n", c.OK.Load())
		fmt.Fprintf(w, "t_requests_total{code=\"500\"} %d\n", c.Failed.Load())
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// Start starts a real Prometheus that scrapes target (host:port,
// path /metrics) every second as job "t", waits until it is ready and
// returns its base URL. It is stopped with SIGTERM, and waited for, when
// the test ends.
func Start(t *testing.T, target string) string {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: t
    static_configs:
      - targets: [%q]
`, target)), 0o600))
	addr := freeAddr(t) // free a moment ago; Prometheus takes it
	logFile := filepath.Join(dir, "prometheus.log")
	logOut, err := os.Create(logFile)
	require.NoError(t, err)
	t.Cleanup(func() { _ = logOut.Close() })

	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logOut, logOut
	require.NoError(t, cmd.Start(), "start prometheus")
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM lets Prometheus close its storage; a kill after a long
		// wait only keeps a broken one from outliving the test.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(Limit):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("prometheus did not stop within %s of SIGTERM", Limit)
		}
	})
	promLog := func() string { b, _ := os.ReadFile(logFile); return string(b) }

	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(Limit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(base + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			require.FailNowf(t, "prometheus exited before it was ready", "%v\n%s", waitErr, promLog())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "prometheus was not ready", "no 200 from %s/-/ready within %s\n%s", base, Limit, promLog())
		}
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
