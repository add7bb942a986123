package probes_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/promtest"
	"github.com/chaos-run/chaos/probes"
)

// The prometheus probe is tested against a real Prometheus server, started
// by the test on a free loopback port and scraping a metrics endpoint the
// test controls.

// promLimit bounds the waits for Prometheus to have scraped what a test
// needs.
const promLimit = promtest.Limit

func requirePrometheus(t *testing.T) string { return promtest.Require(t) }

func startPromCounters(t *testing.T, ok, failed int64) *promtest.Counters {
	return promtest.StartCounters(t, ok, failed)
}

func startPrometheus(t *testing.T, target string) string { return promtest.Start(t, target) }

// promProber builds a prometheus prober for query against url.
func promProber(t *testing.T, url, query, auth string) probes.Prober {
	t.Helper()
	decl := fmt.Sprintf("{prometheus: {url: %s, query: %s%s}, timeout: 5s}", yamlQuote(url), yamlQuote(query), auth)
	return newProber(t, decl)
}

func promObserve(t *testing.T, pr probes.Prober) experiments.PrometheusObservation {
	t.Helper()
	o := probeOnce(t, pr, 5*time.Second)
	p, ok := o.(experiments.PrometheusObservation)
	require.True(t, ok, "a prometheus probe observes a PrometheusObservation, got %T", o)
	return p
}

// awaitProm observes pr until cond holds, within promLimit: Prometheus
// scrapes on its own schedule, and only it can say when it has.
func awaitProm(t *testing.T, pr probes.Prober, what string, cond func(experiments.PrometheusObservation) bool) experiments.PrometheusObservation {
	t.Helper()
	deadline := time.Now().Add(promLimit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		o := promObserve(t, pr)
		if cond(o) {
			return o
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "Prometheus never showed what the test waits for", "%s; last observation: %+v", what, o)
		}
		<-tick.C
	}
}

func TestPrometheusProbe(t *testing.T) {
	requirePrometheus(t)
	counters := startPromCounters(t, 7, 3)
	target, err := url.Parse(counters.URL)
	require.NoError(t, err)
	prom := startPrometheus(t, target.Host)

	// Everything below reads the scraped series: wait for the first scrape.
	awaitProm(t, promProber(t, prom, `t_requests_total`, ""), "the test's counters scraped",
		func(o experiments.PrometheusObservation) bool { return o.OK && len(o.Vector) == 2 })

	t.Run("scalar", func(t *testing.T) {
		o := promObserve(t, promProber(t, prom, `1+1`, ""))
		require.True(t, o.OK, o.Error)
		require.Equal(t, 2.0, o.Value, "a scalar result is the value")
		require.False(t, o.Empty, "a scalar is never empty")
		require.Empty(t, o.Vector, "a scalar has no samples")

		o = promObserve(t, promProber(t, prom, `scalar(up{job="t"})`, ""))
		require.True(t, o.OK, o.Error)
		require.Equal(t, 1.0, o.Value, "the scrape target is up")
	})

	t.Run("vector", func(t *testing.T) {
		o := promObserve(t, promProber(t, prom, `t_requests_total`, ""))
		require.True(t, o.OK, o.Error)
		require.False(t, o.Empty)
		require.Len(t, o.Vector, 2, "one sample per series")
		// Sorted by labels, so the first sample is always the same one.
		require.Equal(t, map[string]string{"__name__": "t_requests_total", "code": "200", "instance": target.Host, "job": "t"},
			o.Vector[0].Labels, "every label of the first sample, by sorted labels")
		require.Equal(t, 7.0, o.Vector[0].Value)
		require.Equal(t, "500", o.Vector[1].Labels["code"])
		require.Equal(t, 3.0, o.Vector[1].Value)
		require.Equal(t, o.Vector[0].Value, o.Value, "value is the first sample's")

		// A bumped counter is seen once Prometheus scraped it: every
		// observation is a fresh query, nothing is cached.
		counters.Failed.Store(12)
		pr := promProber(t, prom, `sum(t_requests_total{code="500"})`, "")
		awaitProm(t, pr, "the bumped counter", func(o experiments.PrometheusObservation) bool { return o.OK && o.Value == 12 })
	})

	t.Run("empty-is-not-zero", func(t *testing.T) {
		o := promObserve(t, promProber(t, prom, `t_no_such_metric_total`, ""))
		require.True(t, o.OK, "a query with no result was answered; error: %s", o.Error)
		require.True(t, o.Empty, "no samples is its own state, so an expression can tell it from a measured zero")
		require.Empty(t, o.Vector)
		require.Zero(t, o.Value)
		require.False(t, experiments.Failed(o), "an empty answer is an answer")

		// A measured zero, for contrast, is not empty.
		o = promObserve(t, promProber(t, prom, `t_requests_total{code="200"} * 0`, ""))
		require.True(t, o.OK, o.Error)
		require.False(t, o.Empty, "a zero that was measured is data")
		require.Zero(t, o.Value)
	})

	t.Run("bad-promql", func(t *testing.T) {
		// Balanced, so the file loads; only Prometheus knows rate() needs a
		// range vector.
		o := promObserve(t, promProber(t, prom, `sum(rate(t_requests_total))`, ""))
		require.False(t, o.OK, "a query Prometheus cannot parse is a failure, never a pass")
		require.Contains(t, o.Error, "parse error", "the error is Prometheus' own explanation")
	})

	t.Run("range-vector-is-refused", func(t *testing.T) {
		o := promObserve(t, promProber(t, prom, `t_requests_total[1m]`, ""))
		require.False(t, o.OK, "a range vector is no instant value: the probe cannot observe with it")
		require.NotEmpty(t, o.Error, "the reason is recorded")
	})

	t.Run("nan-is-recordable", func(t *testing.T) {
		// 0/0 is what an error ratio is when there is no traffic at all.
		o := promObserve(t, promProber(t, prom, `0/0`, ""))
		require.True(t, o.OK, o.Error)
		require.True(t, math.IsNaN(o.Value), "NaN is observed as NaN, so `value < 0.05` does not hold on it")
		_, err := json.Marshal(o.Values())
		require.NoError(t, err, "report.json records every observation's values: a NaN answer must not make the report unwritable")
	})

	t.Run("bearer", func(t *testing.T) {
		const token = "s3cret"
		proxy := authProxy(t, prom, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+token })
		t.Setenv("CHAOS_TEST_PROM_TOKEN", token)
		o := promObserve(t, promProber(t, proxy, `1+1`, `, auth: {bearer: "${env:CHAOS_TEST_PROM_TOKEN}"}`))
		require.True(t, o.OK, "the bearer token reaches Prometheus; error: %s", o.Error)
		require.Equal(t, 2.0, o.Value)

		t.Setenv("CHAOS_TEST_PROM_TOKEN", "wrong-token")
		o = promObserve(t, promProber(t, proxy, `1+1`, `, auth: {bearer: "${env:CHAOS_TEST_PROM_TOKEN}"}`))
		require.False(t, o.OK, "a refused token is a failure")
		require.NotEmpty(t, o.Error, "the reason is recorded")
		require.NotContains(t, o.Error, "wrong-token", "the error never carries the secret")

		o = promObserve(t, promProber(t, proxy, `1+1`, ""))
		require.False(t, o.OK, "no credentials: refused")
	})

	t.Run("basic", func(t *testing.T) {
		proxy := authProxy(t, prom, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "chaos" && p == "pa55word"
		})
		t.Setenv("CHAOS_TEST_PROM_PASSWORD", "pa55word")
		basic := `, auth: {basic: {username: chaos, password: "${env:CHAOS_TEST_PROM_PASSWORD}"}}`
		o := promObserve(t, promProber(t, proxy, `1+1`, basic))
		require.True(t, o.OK, "basic credentials reach Prometheus; error: %s", o.Error)
		require.Equal(t, 2.0, o.Value)

		t.Setenv("CHAOS_TEST_PROM_PASSWORD", "wrong-password")
		o = promObserve(t, promProber(t, proxy, `1+1`, basic))
		require.False(t, o.OK, "a refused password is a failure")
		require.NotContains(t, o.Error, "wrong-password", "the error never carries the secret")
	})
}

// authProxy stands a reverse proxy in front of Prometheus that answers 401
// to every request allow refuses, as an authenticating gateway does.
func authProxy(t *testing.T, prom string, allow func(*http.Request) bool) string {
	t.Helper()
	u, err := url.Parse(prom)
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{Proxy: nil}
	rp.Transport = tr
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allow(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization") // Prometheus itself has no auth
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return srv.URL
}

// TestPrometheusProbeFailures needs no Prometheus: a server that never
// answers and an address nothing listens on are failures with a reason.
func TestPrometheusProbeFailures(t *testing.T) {
	silent, _ := silentServer(t)
	o := probeOnce(t, promProber(t, "http://"+silent, `1+1`, ""), 300*time.Millisecond).(experiments.PrometheusObservation)
	require.False(t, o.OK, "no answer within the timeout is a failure, never a pass")
	require.Contains(t, o.Error, "timed out", "the reason says the probe ran out of time")
	require.Zero(t, o.Value)

	o = promObserve(t, promProber(t, "http://"+closedAddr(t), `1+1`, ""))
	require.False(t, o.OK, "a refused connection is a failure")
	require.NotEmpty(t, o.Error, "the reason is recorded")
}
