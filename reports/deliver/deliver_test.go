package deliver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/reports/deliver"
)

// hookSecret is the secret part of the webhook URL, as a Slack webhook's
// path is: it must show nowhere but in the request line.
const hookSecret = "T0HOOK-s3cr3t-Xq8Wz2Lm5Np7"

// loadExperiment loads an experiment whose owner's webhook is hook with
// ${env:HOOK_SECRET} in it, and whose extra YAML (under spec) is extra.
func loadExperiment(t *testing.T, hook, extra string) *experiments.Experiment {
	t.Helper()
	t.Setenv("HOOK_SECRET", hookSecret)
	t.Setenv("SMTP_PASSWORD", smtpPassword)
	file := filepath.Join(t.TempDir(), "exp.yaml")
	y := `apiVersion: chaos/v1
kind: Experiment
metadata:
  name: deliver-test
  owner: {team: web-team, webhook: "` + hook + `"}
spec:
  hypothesis: The service answers.
  targets:
    link:
      endpoint: {listen: "127.0.0.1:19998", upstream: "127.0.0.1:19999"}
  probes:
    svc: {tcp: {address: "127.0.0.1:19999"}}
  steadyState:
    - svc.ok
  faults:
    - {plugin: latency, target: link, with: {delay: 10ms}, for: 3s}
` + extra
	require.NoError(t, os.WriteFile(file, []byte(y), 0o644), "write the experiment file")
	exp, err := experiments.Load(file, experiments.Options{})
	require.NoError(t, err, "the test's experiment file must load")
	return exp
}

func failedRecord() *reports.Record {
	return &reports.Record{
		RunID:      "run-1",
		Experiment: reports.Experiment{Name: "deliver-test", Hypothesis: "The service answers.", Owner: reports.Owner{Team: "web-team"}},
		StartedAt:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		EndedAt:    time.Date(2025, 1, 2, 3, 4, 15, 0, time.UTC),
		Verdict:    reports.Failed,
		Cause:      "steady-state-broke",
		Reason:     "svc.ok did not hold during the faults",
	}
}

// hookServer is a real HTTP server that answers each request with the next
// of answers (the last one repeats) and keeps the bodies it got.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	paths  []string
	n      atomic.Int32
}

type answer struct {
	code       int
	retryAfter string
	hang       bool
}

func startHook(t *testing.T, answers ...answer) *hookServer {
	t.Helper()
	h := &hookServer{}
	release := make(chan struct{})
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.paths = append(h.paths, r.URL.Path)
		h.mu.Unlock()
		i := int(h.n.Add(1)) - 1
		a := answers[min(i, len(answers)-1)]
		if a.hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.code)
		_, _ = io.WriteString(w, http.StatusText(a.code))
	}))
	t.Cleanup(func() { close(release); h.Close() })
	return h
}

func (h *hookServer) url() string { return h.URL + "/services/${env:HOOK_SECRET}" }

func (h *hookServer) requests() int { return int(h.n.Load()) }

// drive runs deliver while advancing the fake clock past every wait the
// retry loop arms, and returns the deliveries and the waits it saw.
func drive(t *testing.T, clk *clock.Fake, deliver func() []reports.Delivery) ([]reports.Delivery, []time.Duration) {
	t.Helper()
	done := make(chan []reports.Delivery, 1)
	go func() { done <- deliver() }()
	var waits []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		armed := make(chan error, 1)
		go func() { armed <- clk.BlockUntil(ctx, 1) }()
		select {
		case out := <-done:
			return out, waits
		case err := <-armed:
			require.NoError(t, err, "the retry loop neither returned nor armed a timer")
			d, ok := clk.Next()
			require.True(t, ok, "a timer is pending")
			waits = append(waits, d)
			clk.Advance(d)
		}
	}
}

func newDeliverer(clk clock.Clock) *deliver.Deliverer {
	return &deliver.Deliverer{Clock: clk, Retry: deliver.Retry{AttemptTimeout: 5 * time.Second}}
}

func TestWebhookRetriesTwiceThenDelivers(t *testing.T) {
	h := startHook(t, answer{code: 503}, answer{code: 502}, answer{code: 200})
	exp := loadExperiment(t, h.url(), "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	d := newDeliverer(clk)

	out, waits := drive(t, clk, func() []reports.Delivery {
		return d.Deliver(context.Background(), exp, failedRecord(), []string{"rep/report.md", "rep/report.json"})
	})

	require.Len(t, out, 1, "one webhook, one delivery")
	require.True(t, out[0].OK, "the third attempt gets through: %+v", out[0])
	require.Equal(t, 3, out[0].Attempts, "two 5xx answers are retried")
	require.Equal(t, reports.ChannelWebhook, out[0].Channel)
	require.Equal(t, h.URL+"/services/***", out[0].Target, "the target shows the secret as ***")
	require.Equal(t, 3, h.requests(), "the server saw every attempt")
	require.Len(t, waits, 2, "one wait between each two attempts")
	// Exponential backoff with jitter: the first wait is within [0.5s, 1s],
	// the second within [1s, 2s].
	require.GreaterOrEqual(t, waits[0], 500*time.Millisecond, "first backoff")
	require.LessOrEqual(t, waits[0], time.Second, "first backoff")
	require.GreaterOrEqual(t, waits[1], time.Second, "second backoff doubles")
	require.LessOrEqual(t, waits[1], 2*time.Second, "second backoff doubles")

	require.Equal(t, "/services/"+hookSecret, h.paths[0], "the request goes to the revealed URL")
	var msg deliver.WebhookMessage
	require.NoError(t, json.Unmarshal(h.bodies[2], &msg), "the body is Slack-compatible JSON")
	require.Contains(t, msg.Text, "*deliver-test*: failed (steady-state-broke)", "the verdict line comes first")
	require.Contains(t, msg.Text, "svc.ok did not hold during the faults", "the reason is in the message")
	require.Contains(t, msg.Text, "Report: rep/report.md", "the message says where the report is")
	require.NotContains(t, string(h.bodies[2]), hookSecret, "the body never holds the secret")
}

func TestWebhookGivesUpAfterBoundedAttempts(t *testing.T) {
	h := startHook(t, answer{code: 500})
	exp := loadExperiment(t, h.url(), "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	d := newDeliverer(clk)

	out, waits := drive(t, clk, func() []reports.Delivery {
		return d.Deliver(context.Background(), exp, failedRecord(), nil)
	})

	require.False(t, out[0].OK, "a server that always fails is not delivered to")
	require.Equal(t, 5, out[0].Attempts, "the default bound is 5 attempts")
	require.Equal(t, 5, h.requests())
	require.Len(t, waits, 4)
	var total time.Duration
	for _, w := range waits {
		total += w
	}
	require.LessOrEqual(t, total, time.Minute, "the waits stay within Retry.Total")
	require.Contains(t, out[0].Error, "500", "the error says what the server answered")
	require.NotContains(t, out[0].Error, hookSecret, "the error never holds the secret")
}

func TestWebhookHonoursRetryAfterWithinTheBound(t *testing.T) {
	h := startHook(t, answer{code: 429, retryAfter: "7"}, answer{code: 200})
	exp := loadExperiment(t, h.url(), "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))

	out, waits := drive(t, clk, func() []reports.Delivery {
		return newDeliverer(clk).Deliver(context.Background(), exp, failedRecord(), nil)
	})
	require.True(t, out[0].OK, "429 is retried: %+v", out[0])
	require.Equal(t, []time.Duration{7 * time.Second}, waits, "the wait is the server's Retry-After")
}

func TestWebhookRetryAfterPastTheBoundGivesUp(t *testing.T) {
	h := startHook(t, answer{code: 503, retryAfter: "3600"})
	exp := loadExperiment(t, h.url(), "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))

	out, waits := drive(t, clk, func() []reports.Delivery {
		return newDeliverer(clk).Deliver(context.Background(), exp, failedRecord(), nil)
	})
	require.False(t, out[0].OK)
	require.Equal(t, 1, out[0].Attempts, "an hour's Retry-After is past the minute allowed: no second attempt")
	require.Empty(t, waits, "nothing is waited for in vain")
	require.Contains(t, out[0].Error, "past the 1m0s allowed")
}

func TestWebhookDoesNotRetryA4xx(t *testing.T) {
	h := startHook(t, answer{code: 404})
	exp := loadExperiment(t, h.url(), "")
	out := newDeliverer(nil).Deliver(context.Background(), exp, failedRecord(), nil)
	require.False(t, out[0].OK)
	require.Equal(t, 1, out[0].Attempts, "a 404 will not change by asking again")
	require.Equal(t, 1, h.requests())
	require.Contains(t, out[0].Error, deliver.ErrRejected.Error())
}

func TestWebhookThatHangsIsBoundedPerAttempt(t *testing.T) {
	h := startHook(t, answer{hang: true})
	exp := loadExperiment(t, h.url(), "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	d := &deliver.Deliverer{Clock: clk, Retry: deliver.Retry{Attempts: 2, AttemptTimeout: 300 * time.Millisecond}}

	out, _ := drive(t, clk, func() []reports.Delivery {
		return d.Deliver(context.Background(), exp, failedRecord(), nil)
	})
	require.False(t, out[0].OK, "a server that never answers is not delivered to")
	require.Equal(t, 2, out[0].Attempts, "each attempt ends at its deadline and the next is tried")
	require.Contains(t, out[0].Error, "deadline exceeded", "the error says the attempt ran out of time")
	require.NotContains(t, out[0].Error, hookSecret)
}

func TestWebhookUnreachableNeverShowsTheURL(t *testing.T) {
	h := startHook(t, answer{code: 200})
	hook := h.url()
	h.Close() // nothing listens there any more
	exp := loadExperiment(t, hook, "")
	clk := clock.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	out, _ := drive(t, clk, func() []reports.Delivery {
		return newDeliverer(clk).Deliver(context.Background(), exp, failedRecord(), nil)
	})
	require.False(t, out[0].OK)
	require.Equal(t, 5, out[0].Attempts, "a refused connection is retried")
	require.Contains(t, out[0].Error, "connection refused")
	require.False(t, strings.Contains(out[0].Error, hookSecret), "the error never holds the webhook's secret: %s", out[0].Error)
}

func TestNoOwnerNoDelivery(t *testing.T) {
	require.Nil(t, newDeliverer(nil).Deliver(context.Background(), nil, failedRecord(), nil),
		"a file that did not load has no owner to tell")
}

func plainSecret(s string) experiments.Secret { return experiments.Plain(s) }
