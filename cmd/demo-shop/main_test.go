package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// hangGuard bounds waits for things that must happen, so a bug fails the
// test instead of hanging it. It is never a timing assertion.
const hangGuard = 30 * time.Second

// runningShop is one in-process run of the demo.
type runningShop struct {
	front, backend string
	stop           context.CancelFunc
	code           chan int
	stderr         *bytes.Buffer
}

// start runs the demo with args on free loopback ports and waits for its
// ready line. The cleanup stops it and checks it returned 0.
func start(t *testing.T, args ...string) *runningShop {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	s := &runningShop{stop: cancel, code: make(chan int, 1), stderr: new(bytes.Buffer)}
	full := append([]string{"demo-shop", "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0"}, args...)
	go func() {
		code := run(ctx, full, pw, s.stderr)
		_ = pw.Close()
		s.code <- code
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-s.code:
			require.Equal(t, exitOK, code, "a demo stopped by its context should exit 0; stderr:\n%s", s.stderr)
		case <-time.After(hangGuard):
			t.Fatal("run did not return after its context was cancelled")
		}
	})

	line, err := bufio.NewReader(pr).ReadString('\n')
	require.NoError(t, err, "run should print a ready line once both servers listen")
	// Drain anything else so run can never block on stdout.
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	var front, backend string
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, "front="); ok {
			front = v
		}
		if v, ok := strings.CutPrefix(f, "backend="); ok {
			backend = v
		}
	}
	require.True(t, strings.HasPrefix(line, "ready "), "the ready line starts with 'ready': %q", line)
	for _, addr := range []string{front, backend} {
		_, port, err := net.SplitHostPort(addr)
		require.NoError(t, err, "the ready line names both addresses: %q", line)
		require.NotEqual(t, "0", port, "the ready line must show bound ports, not the requested port 0: %q", line)
	}
	s.front, s.backend = front, backend
	return s
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: hangGuard}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	require.NoError(t, err, "GET %s should get an answer", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// silentListener accepts connections and never answers, like a backend
// stuck behind a huge delay.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close(), "the port is freed so connections to it are refused")
	return addr
}

func TestFrontAnswersWithPrice(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	// An empty -backend-url makes the front call the backend directly.
	s := start(t, "-backend-url", "")
	c := client(t)

	for _, path := range []string{"/", "/health"} {
		code, body := get(t, c, "http://"+s.front+path)
		require.Equal(t, http.StatusOK, code, "GET %s with a healthy backend should succeed: %s", path, body)
		var got struct {
			Item  string  `json:"item"`
			Price float64 `json:"price"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &got), "the front answers JSON: %s", body)
		require.Equal(t, "coffee", got.Item, "the front passes on the backend's item")
		require.InDelta(t, 3.5, got.Price, 0, "the front passes on the backend's price")
	}

	code, body := get(t, c, "http://"+s.backend+"/price")
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"item":"coffee","price":3.5}`, body, "the backend answers the fixed price")

	code, body = get(t, c, "http://"+s.front+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `demo_requests_total{tier="front",code="200"} 2`+"\n",
		"both front requests should be counted as 200")
	require.Contains(t, body, `demo_requests_total{tier="backend",code="200"} 3`+"\n",
		"the backend served two front requests and one direct one")
	require.Contains(t, body, `demo_request_duration_seconds_count{tier="front"} 2`+"\n",
		"the duration summary counts the same front requests")
	require.Contains(t, body, `# TYPE demo_requests_total counter`, "the exposition declares its metric types")

	// Scrapes are not requests of the shop and must not count.
	_, again := get(t, c, "http://"+s.backend+"/metrics")
	require.Contains(t, again, `demo_requests_total{tier="front",code="200"} 2`+"\n",
		"both tiers expose the same numbers and a scrape does not count itself")
}

func TestFrontTimesOutOnSilentBackend(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	s := start(t, "-backend-url", "http://"+silentListener(t), "-timeout", "20ms")
	c := client(t)

	code, body := get(t, c, "http://"+s.front+"/")
	require.Equal(t, http.StatusGatewayTimeout, code, "a backend that never answers must give 504: %s", body)
	require.Contains(t, body, `"error"`, "the 504 carries a JSON error")

	_, metrics := get(t, c, "http://"+s.front+"/metrics")
	require.Contains(t, metrics, `demo_requests_total{tier="front",code="504"} 1`+"\n",
		"the timed-out request should be counted as 504")
}

func TestFrontFailsOnClosedBackend(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	s := start(t, "-backend-url", "http://"+closedPort(t))
	c := client(t)

	code, body := get(t, c, "http://"+s.front+"/health")
	require.Equal(t, http.StatusBadGateway, code, "a refused backend connection must give 502: %s", body)

	_, metrics := get(t, c, "http://"+s.front+"/metrics")
	require.Contains(t, metrics, `demo_requests_total{tier="front",code="502"} 1`+"\n",
		"the failed request should be counted as 502")
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	s := start(t, "-backend-url", "")
	s.stop()
	select {
	case code := <-s.code:
		require.Equal(t, exitOK, code, "a graceful stop exits 0")
		s.code <- code // leave it for the cleanup's check
	case <-time.After(hangGuard):
		t.Fatal("run did not return after its context was cancelled")
	}
	_, err := net.Dial("tcp", s.front)
	require.Error(t, err, "the front must stop listening once run returns")
	require.Contains(t, s.stderr.String(), "demo-shop started", "run logs its start to stderr")
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-timeout", "0s"},
		{"-work", "-1ms"},
		{"-backend-url", "ftp://x"},
		{"-nope"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{"demo-shop"}, args...), &stdout, &stderr)
		require.Equal(t, exitUsage, code, "bad flags %q should be a usage error", args)
		require.Empty(t, stdout.String(), "nothing is ready after bad flags %q", args)
	}
}

func TestRunFailsWhenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"demo-shop", "-front", ln.Addr().String(), "-backend", "127.0.0.1:0"}, &stdout, &stderr)
	require.Equal(t, exitError, code, "a front port already in use must fail the run")
	require.Empty(t, stdout.String(), "no ready line when a server could not listen")
}
