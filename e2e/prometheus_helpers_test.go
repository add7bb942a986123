package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheusServer is a real Prometheus started by a test.
type prometheusServer struct {
	url  string // http://127.0.0.1:PORT
	proc *process
	// client has no proxy from the environment and keeps no connection
	// open, so nothing of it outlives the test.
	client *http.Client
}

// startPrometheus starts a real Prometheus on a free loopback port with its
// own storage, scraping http://target/metrics every second as job "demo",
// and waits until it is ready. It skips the test when the binary is not
// installed. When the test ends it is stopped with SIGTERM and waited for.
func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not installed; scripts/deps.sh installs it (Debian package prometheus)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [%q]
`, target)), 0o600))
	addr := freeAddr(t)
	p := start(t, bin,
		"--config.file="+cfg,
		"--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--log.level=warn")
	// Registered after start's own cleanup, so it runs first: SIGTERM lets
	// Prometheus close its storage; start's kill is only for one that
	// does not stop.
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(waitLimit):
			t.Errorf("prometheus did not stop within %s of SIGTERM", waitLimit)
		}
	})
	s := &prometheusServer{url: "http://" + addr, proc: p, client: &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}}
	ready := poll(waitLimit, func() bool {
		select {
		case <-p.exited:
			return true
		default:
		}
		return s.ready()
	})
	select {
	case <-p.exited:
		require.FailNowf(t, "prometheus exited before it was ready", "%v\nstderr:\n%s", p.err, p.stderr)
	default:
	}
	require.Truef(t, ready, "prometheus answers 200 on /-/ready within %s\nstderr:\n%s", waitLimit, p.stderr)
	return s
}

// ready reports whether Prometheus says it is ready right now.
func (s *prometheusServer) ready() bool {
	resp, err := s.client.Get(s.url + "/-/ready")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// promResult is the answer to an instant query: the value of a scalar or
// of the first sample of a vector, and whether the vector was empty.
type promResult struct {
	value   float64
	empty   bool
	samples int
}

// query runs an instant query through the HTTP API, independently of the
// probe under test.
func (s *prometheusServer) query(q string) (promResult, error) {
	resp, err := s.client.PostForm(s.url+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return promResult{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return promResult{}, err
	}
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return promResult{}, fmt.Errorf("decode %s: %w", body, err)
	}
	if answer.Status != "success" {
		return promResult{}, fmt.Errorf("query %s: %s", q, answer.Error)
	}
	var point []any // [timestamp, "value"]
	switch answer.Data.ResultType {
	case "scalar":
		if err := json.Unmarshal(answer.Data.Result, &point); err != nil {
			return promResult{}, err
		}
	case "vector":
		var samples []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(answer.Data.Result, &samples); err != nil {
			return promResult{}, err
		}
		if len(samples) == 0 {
			return promResult{empty: true}, nil
		}
		r, err := parsePoint(samples[0].Value)
		r.samples = len(samples)
		return r, err
	default:
		return promResult{}, fmt.Errorf("query %s returned a %s", q, answer.Data.ResultType)
	}
	return parsePoint(point)
}

func parsePoint(point []any) (promResult, error) {
	if len(point) != 2 {
		return promResult{}, fmt.Errorf("a sample is [time, value], got %v", point)
	}
	s, ok := point[1].(string)
	if !ok {
		return promResult{}, fmt.Errorf("a sample's value is a string, got %v", point[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	return promResult{value: v, samples: 1}, err
}

// finite reports whether a query result is a number an expression can
// judge: not empty, not NaN, not infinite.
func (r promResult) finite() bool {
	return !r.empty && !math.IsNaN(r.value) && !math.IsInf(r.value, 0)
}

// forwarder is a plain TCP relay from a listen address to an upstream,
// standing where the chaos proxy will stand, so that the demo's front can
// reach its backend before chaos runs.
type forwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

func startForwarder(t *testing.T, listen, upstream string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	require.NoError(t, err, "listen on %s for the warm-up relay", listen)
	f := &forwarder{ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() { f.relay(c, upstream) })
		}
	})
	t.Cleanup(f.stop)
	return f
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) relay(down net.Conn, upstream string) {
	if !f.track(down) {
		return
	}
	up, err := net.DialTimeout("tcp", upstream, 5*time.Second)
	if err != nil {
		_ = down.Close()
		return
	}
	if !f.track(up) {
		_ = down.Close()
		return
	}
	var copies sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// One side is done: end both, so the other copy returns too.
		_ = dst.Close()
		_ = src.Close()
	}
	copies.Go(func() { pipe(up, down) })
	copies.Go(func() { pipe(down, up) })
	copies.Wait()
}

// stop closes the listener and every relayed connection and waits until
// every goroutine of the relay has returned. The address is free after.
func (f *forwarder) stop() {
	f.once.Do(func() {
		_ = f.ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			_ = c.Close()
		}
		f.conns = nil
		f.mu.Unlock()
		f.wg.Wait()
	})
}

// traffic sends GET url every interval, one request at a time, until
// stopped; stop waits for the last request.
func traffic(url string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if resp, err := client.Get(url); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			client.CloseIdleConnections()
		})
	}
}
