package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/safety"
)

// recordingDeliverer is a Deliverer that delivers nothing and says so: the
// engine's part is only to call it and record what it says (the real
// deliveries are tested in reports/deliver against real servers).
type recordingDeliverer struct {
	calls []string // the verdicts it was asked to deliver
	files [][]string
}

func (d *recordingDeliverer) Deliver(_ context.Context, exp *experiments.Experiment, rec *reports.Record, files []string) []reports.Delivery {
	d.calls = append(d.calls, string(rec.Verdict)+" "+exp.Metadata.Name)
	d.files = append(d.files, files)
	return []reports.Delivery{{Channel: reports.ChannelWebhook, Target: "http://hooks/***", Attempts: 5, Error: "gave up after 5 attempts"}}
}

func TestRunnerDeliversARefusalAndKeepsItsVerdict(t *testing.T) {
	w := newWorld()
	rn, dir := newRunner(t, w)
	d := &recordingDeliverer{}
	rn.Deliverer = d
	path := filepath.Join(dir, "exp.yaml")
	require.NoError(t, os.WriteFile(path, []byte(runnerFile), 0o600))
	require.NoError(t, safety.Engage(rn.StateDir, "incident 4711"))

	rec := rn.RunFile(t.Context(), path)

	require.Equal(t, reports.Refused, rec.Verdict, "a failed delivery never changes the verdict")
	require.Equal(t, reports.Cause("kill-switch"), rec.Cause)
	require.Equal(t, []string{"refused runner-test"}, d.calls, "the owners hear of a refusal too")
	require.Contains(t, d.files[0], filepath.Join(dir, "reports", reports.JSONFile), "the deliverer is told the files written")
	got := readReport(t, dir)
	require.Len(t, got.Deliveries, 1, "the report on disk records the delivery")
	require.False(t, got.Deliveries[0].OK)
	require.Equal(t, 5, got.Deliveries[0].Attempts)
	require.Equal(t, reports.Refused, got.Verdict)
}

func TestRunnerDeliversNothingForAFileThatDidNotLoad(t *testing.T) {
	w := newWorld()
	rn, dir := newRunner(t, w)
	d := &recordingDeliverer{}
	rn.Deliverer = d
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("apiVersion: chaos/v1\nkind: Experiment\nspec: {}\n"), 0o600))
	rec := rn.RunFile(t.Context(), path)
	require.Equal(t, reports.Invalid, rec.Verdict)
	require.Empty(t, d.calls, "no owner is known of a file that did not load")
	require.Empty(t, readReport(t, dir).Deliveries)
}

// progressLog keeps what a Progress is told.
type progressLog struct {
	mu     sync.Mutex
	start  engine.Start
	events []reports.Event
}

func (p *progressLog) Started(s engine.Start) { p.mu.Lock(); p.start = s; p.mu.Unlock() }
func (p *progressLog) Event(e reports.Event) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}
func (p *progressLog) Budget(time.Duration, time.Duration) {}

func TestRunnerTellsProgressEveryEventWithoutSecrets(t *testing.T) {
	const secret = "pr0gress-s3cr3t-Vq2Lm8"
	t.Setenv("PROGRESS_TOKEN", secret)
	w := newWorld()
	rn, dir := newRunner(t, w)
	p := &progressLog{}
	rn.Progress = p
	// Nothing listens on port 3: the steady state does not hold, and the
	// probe's failure names its URL, which holds the secret.
	file := strings.Replace(runnerFile, "http://127.0.0.1:3/", "\"http://127.0.0.1:3/?token=${env:PROGRESS_TOKEN}\"", 1)
	path := filepath.Join(dir, "exp.yaml")
	require.NoError(t, os.WriteFile(path, []byte(file), 0o600))

	rec := rn.RunFile(t.Context(), path)

	require.Equal(t, reports.Failed, rec.Verdict, rec.Reason)
	require.Equal(t, "runner-test", p.start.Name)
	require.Equal(t, []string{"svc"}, p.start.Probes)
	require.Len(t, p.start.Faults, 1)
	require.Equal(t, 10*time.Second, p.start.Faults[0].For, "the view knows how long each fault lasts")
	require.Len(t, p.events, len(rec.Timeline), "progress is told every event the record has")
	for i, e := range p.events {
		require.Equal(t, rec.Timeline[i].Kind, e.Kind, "in the same order")
		require.NotContains(t, e.Message, secret, "progress never sees a secret")
		for _, v := range e.Values {
			if s, ok := v.(string); ok {
				require.NotContains(t, s, secret, "progress never sees a secret")
			}
		}
	}
}
