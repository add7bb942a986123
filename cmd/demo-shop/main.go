// Command demo-shop is the small two-tier HTTP service that `make demo` and
// the end-to-end tests run chaos experiments against.
//
// One process serves two real HTTP servers on loopback: a backend that prices
// a coffee, and a front that asks the backend through -backend-url (in the
// demo, the chaos latency proxy stands there) and answers 504 when the
// backend is too slow and 502 when it fails. Both tiers expose hand-written
// Prometheus metrics so experiments can probe them.
//
// It stands for any service under test, so it must never import the chaos
// packages or know anything of the tool that breaks it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	// Cancelled on SIGINT/SIGTERM, which starts the graceful shutdown in run.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// shutdownTimeout bounds the graceful shutdown of each server, so a stuck
// request cannot keep the demo alive after it was told to stop.
const shutdownTimeout = 5 * time.Second

type config struct {
	front      string
	backend    string
	backendURL string
	timeout    time.Duration
	work       time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	name := "demo-shop"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	var cfg config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.front, "front", "127.0.0.1:18080", "listen address of the front tier")
	fs.StringVar(&cfg.backend, "backend", "127.0.0.1:18081", "listen address of the backend tier")
	fs.StringVar(&cfg.backendURL, "backend-url", "http://127.0.0.1:18082",
		"base URL the front calls for prices (the latency proxy in the demo); empty means the backend's own address")
	fs.DurationVar(&cfg.timeout, "timeout", 250*time.Millisecond, "how long the front waits for the backend")
	fs.DurationVar(&cfg.work, "work", 5*time.Millisecond, "fixed work time of the backend per request")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.timeout <= 0 {
		return cfg, fmt.Errorf("-timeout must be positive, got %s", cfg.timeout)
	}
	if cfg.work < 0 {
		return cfg, fmt.Errorf("-work must not be negative, got %s", cfg.work)
	}
	if cfg.backendURL != "" {
		u, err := url.Parse(cfg.backendURL)
		if err != nil {
			return cfg, fmt.Errorf("-backend-url: %w", err)
		}
		if u.Scheme != "http" || u.Host == "" {
			return cfg, fmt.Errorf("-backend-url must be an http://host:port URL, got %q", cfg.backendURL)
		}
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, err)
		}
		return exitUsage
	}

	backendLn, err := net.Listen("tcp", cfg.backend)
	if err != nil {
		log.Error("listen backend", "err", err)
		return exitError
	}
	frontLn, err := net.Listen("tcp", cfg.front)
	if err != nil {
		_ = backendLn.Close()
		log.Error("listen front", "err", err)
		return exitError
	}
	backendAddr, frontAddr := backendLn.Addr().String(), frontLn.Addr().String()
	if cfg.backendURL == "" {
		cfg.backendURL = "http://" + backendAddr
	}

	// The front has its own transport so closing its idle connections on
	// shutdown leaves nothing behind.
	transport := &http.Transport{
		// No HTTP_PROXY from the environment: the front must reach exactly
		// -backend-url, or the experiment breaks the wrong path.
		Proxy:               nil,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	defer transport.CloseIdleConnections()

	backendMetrics := newTierMetrics("backend")
	frontMetrics := newTierMetrics("front")
	shop := &shop{
		cfg:     cfg,
		client:  &http.Client{Transport: transport},
		backend: backendMetrics,
		front:   frontMetrics,
	}
	backendSrv := newServer(shop.backendHandler())
	frontSrv := newServer(shop.frontHandler())

	var wg sync.WaitGroup
	serveErr := make(chan error, 2)
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{backendSrv, backendLn}, {frontSrv, frontLn}} {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- err
			}
		})
	}

	log.Info("demo-shop started", "front", frontAddr, "backend", backendAddr,
		"backend_url", cfg.backendURL, "timeout", cfg.timeout, "work", cfg.work)
	fmt.Fprintf(stdout, "ready front=%s backend=%s\n", frontAddr, backendAddr)

	code := exitOK
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		log.Error("serve", "err", err)
		code = exitError
	}

	// The front goes first so requests it is still answering can reach the
	// backend; the shutdown must not be cut short by the cancelled ctx that
	// asked for it, hence WithoutCancel.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range []*http.Server{frontSrv, backendSrv} {
		if err := srv.Shutdown(sctx); err != nil {
			log.Error("shutdown", "err", err)
			_ = srv.Close()
			code = exitError
		}
	}
	wg.Wait()
	log.Info("demo-shop stopped")
	return code
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
}

// price is the backend's answer.
type price struct {
	Item  string  `json:"item"`
	Price float64 `json:"price"`
}

type shop struct {
	cfg     config
	client  *http.Client
	backend *tierMetrics
	front   *tierMetrics
}

func (s *shop) backendHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /price", s.backend.instrument(http.HandlerFunc(s.price)))
	mux.Handle("GET /metrics", metricsHandler(s.front, s.backend))
	return mux
}

func (s *shop) frontHandler() http.Handler {
	mux := http.NewServeMux()
	h := s.front.instrument(http.HandlerFunc(s.home))
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /health", h)
	mux.Handle("GET /metrics", metricsHandler(s.front, s.backend))
	return mux
}

// price simulates a fixed amount of work, then answers. The wait ends early
// if the caller goes away, so a shutdown is never held up by it.
func (s *shop) price(w http.ResponseWriter, r *http.Request) {
	if s.cfg.work > 0 {
		t := time.NewTimer(s.cfg.work)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	writeJSON(w, http.StatusOK, price{Item: "coffee", Price: 3.5})
}

// home asks the backend for the price within -timeout.
func (s *shop) home(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.timeout)
	defer cancel()
	p, err := s.fetchPrice(ctx)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "item": p.Item, "price": p.Price})
	case errors.Is(err, context.DeadlineExceeded):
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": "backend timed out"})
	default:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": "backend failed"})
	}
}

func (s *shop) fetchPrice(ctx context.Context) (price, error) {
	var p price
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.backendURL+"/price", nil)
	if err != nil {
		return p, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return p, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("backend answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return p, fmt.Errorf("decode backend answer: %w", err)
	}
	return p, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// tierMetrics counts the requests of one tier.
type tierMetrics struct {
	tier     string
	byCode   map[int]*atomic.Uint64 // keys fixed at construction, read-only after
	other    atomic.Uint64
	sumNanos atomic.Int64
	count    atomic.Uint64
}

func newTierMetrics(tier string) *tierMetrics {
	// These codes are counted one by one, anything else as "other". A fixed
	// set lets every counter be a plain atomic with no lock around a map.
	codes := []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout}
	m := &tierMetrics{tier: tier, byCode: make(map[int]*atomic.Uint64, len(codes))}
	for _, c := range codes {
		m.byCode[c] = new(atomic.Uint64)
	}
	return m
}

func (m *tierMetrics) observe(code int, d time.Duration) {
	if c, ok := m.byCode[code]; ok {
		c.Add(1)
	} else {
		m.other.Add(1)
	}
	m.sumNanos.Add(int64(d))
	m.count.Add(1)
}

// instrument counts each request served by h with its status and duration.
func (m *tierMetrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.observe(sw.code, time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// metricsHandler writes the Prometheus text exposition format by hand. Both
// tiers serve the same numbers since they share one process.
func metricsHandler(tiers ...*tierMetrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		fmt.Fprintln(w, "# HELP demo_requests_total Requests served, by tier and status code.")
		fmt.Fprintln(w, "# TYPE demo_requests_total counter")
		for _, m := range tiers {
			keys := make([]int, 0, len(m.byCode))
			for c := range m.byCode {
				keys = append(keys, c)
			}
			sort.Ints(keys)
			for _, c := range keys {
				fmt.Fprintf(w, "demo_requests_total{tier=%q,code=%q} %d\n", m.tier, strconv.Itoa(c), m.byCode[c].Load())
			}
			fmt.Fprintf(w, "demo_requests_total{tier=%q,code=\"other\"} %d\n", m.tier, m.other.Load())
		}
		fmt.Fprintln(w, "# HELP demo_request_duration_seconds Time spent serving requests, by tier.")
		fmt.Fprintln(w, "# TYPE demo_request_duration_seconds summary")
		for _, m := range tiers {
			// observe adds the duration before the count and this reads the
			// count first, so every counted request's duration is in the sum.
			count := m.count.Load()
			sum := time.Duration(m.sumNanos.Load()).Seconds()
			fmt.Fprintf(w, "demo_request_duration_seconds_sum{tier=%q} %s\n", m.tier, strconv.FormatFloat(sum, 'g', -1, 64))
			fmt.Fprintf(w, "demo_request_duration_seconds_count{tier=%q} %d\n", m.tier, count)
		}
	})
}
