package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// TestTimeToSafety measures the abort path: from the probe result that
// violates the budget to every fault confirmed reverted, with the real
// latency plugin (its own process) live on real loopback traffic. It runs
// only under `make bench` (CHAOS_BENCH=N aborts): it measures, it does not
// judge, so it asserts correctness only and prints the numbers.
//
// Each abort is run twice: with the budget checked on every observation
// (chaos) and with a 1 s polling loop (Chaos Toolkit's default), so the
// ratio is measured in the same run on the same machine.
func TestTimeToSafety(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CHAOS_BENCH"))
	if n <= 0 {
		t.Skip("a benchmark: `make bench` runs it with CHAOS_BENCH=100")
	}
	// The service: healthy until the fault has been live for a moment,
	// then answers 500, as a service that falls over under the fault.
	var bad atomic.Bool
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if bad.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})}
	go func() { _ = srv.Serve(up) }()
	t.Cleanup(func() { _ = srv.Close() })

	proxy := freeAddr(t)
	src := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata: {name: time-to-safety, owner: {team: bench}}
spec:
  hypothesis: the service keeps answering 200
  targets:
    link: {endpoint: {listen: %s, upstream: %s}}
  probes:
    svc: {http: {url: "http://%s/"}, every: 5ms, timeout: 1s}
  steadyState: [svc.status == 200]
  faults: [{plugin: latency, target: link, with: {delay: 1ms}, for: 10m}]
  budget: {abortWhen: [svc.status != 200]}
  safety: {maxDuration: 20m}
`, proxy, up.Addr(), proxy)
	exp, err := experiments.Parse("tts.yaml", []byte(src), experiments.Options{MinProbeEvery: time.Millisecond})
	require.NoError(t, err)

	run := func(pollEvery time.Duration) time.Duration {
		bad.Store(false)
		done := make(chan *reports.Record, 1)
		injecting := make(chan struct{}, 1)
		opts := engine.Options{
			// The engine logs "inject" as it asks the plugin; that is when
			// the service is made to fall over.
			Log: slog.New(onMessage{"inject", injecting}),
			Plugins: engine.ExecPlugins{Command: func(name string) (*exec.Cmd, error) {
				return exec.Command(built.chaos, "plugin", "serve", name), nil
			}},
			BudgetEvery: pollEvery,
		}
		ctx := t.Context()
		go func() { done <- engine.Run(ctx, exp, opts) }()
		<-injecting
		// A random moment after the injection, so that a polling loop's
		// phase is not always the worst (or best) case.
		flip := time.AfterFunc(rand.N(time.Second), func() { bad.Store(true) })
		defer flip.Stop()
		rec := <-done
		require.Equal(t, reports.Aborted, rec.Verdict, rec.Reason)
		require.NotNil(t, rec.TimeToSafety, "an aborted run records its time to safety")
		require.Equal(t, "reverted", rec.Faults[0].State)
		return *rec.TimeToSafety
	}

	summary := func(name string, d []time.Duration) {
		slices.Sort(d)
		p99 := d[min(len(d)-1, (len(d)*99+99)/100-1)]
		fmt.Printf("time-to-safety %-22s n=%d min=%s median=%s p99=%s\n", name, len(d),
			d[0].Round(time.Microsecond), d[len(d)/2].Round(time.Microsecond), p99.Round(time.Microsecond))
	}
	var event, polled []time.Duration
	pollN := max(n/5, 5) // a 1 s poll costs up to a second a run
	for i := range n {
		event = append(event, run(0))
		if i < pollN {
			polled = append(polled, run(time.Second))
		}
	}
	summary("on-every-observation", event)
	summary("1s-polling", polled)
	slices.Sort(event)
	slices.Sort(polled)
	fmt.Printf("time-to-safety median ratio polling/chaos = %.1fx\n", float64(polled[len(polled)/2])/float64(event[len(event)/2]))
}

// onMessage is a slog handler that signals when a message is logged.
type onMessage struct {
	msg string
	ch  chan struct{}
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }
