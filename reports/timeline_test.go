package reports_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// TestTimelineIsBounded: however many events a run appends, the record keeps
// the first and the last TimelineKeep, counts the middle per kind and per
// probe, and the Markdown report says so with totals that stay true.
func TestTimelineIsBounded(t *testing.T) {
	const extra = 2500
	total := 2*reports.TimelineKeep + extra
	rec := &reports.Record{Verdict: reports.Failed, Experiment: reports.Experiment{Name: "long-run"}}
	rec.AppendEvent(reports.Event{At: 0, Kind: reports.EventInject, Source: "latency", OK: true})
	for i := 1; i < total; i++ {
		// Every tenth observation fails.
		rec.AppendEvent(reports.Event{At: time.Duration(i) * time.Millisecond, Kind: reports.EventProbe, Source: "checkout", OK: i%10 != 0,
			Values: map[string]any{"latency": "1ms"}})
	}
	require.Len(t, rec.Timeline, 2*reports.TimelineKeep, "the timeline never holds more than the first and the last TimelineKeep events")
	require.Equal(t, reports.EventInject, rec.Timeline[0].Kind, "the first events are kept: how the run started")
	require.Equal(t, time.Duration(reports.TimelineKeep-1)*time.Millisecond, rec.Timeline[reports.TimelineKeep-1].At)
	require.Equal(t, time.Duration(total-reports.TimelineKeep)*time.Millisecond, rec.Timeline[reports.TimelineKeep].At, "the last TimelineKeep follow")
	require.Equal(t, time.Duration(total-1)*time.Millisecond, rec.Timeline[len(rec.Timeline)-1].At, "the last event is kept: how the run ended")

	g := rec.TimelineOmitted
	require.NotNil(t, g, "the record says that events were left out")
	require.Equal(t, extra, g.Events)
	require.Equal(t, time.Duration(reports.TimelineKeep)*time.Millisecond, g.From)
	require.Equal(t, time.Duration(reports.TimelineKeep+extra-1)*time.Millisecond, g.To)
	require.Equal(t, map[reports.EventKind]int{reports.EventProbe: extra}, g.ByKind)
	require.Equal(t, extra, g.Probes["checkout"].Observations)
	require.Equal(t, extra/10, g.Probes["checkout"].Failed)

	js, err := json.Marshal(rec)
	require.NoError(t, err)
	require.Contains(t, string(js), `"timelineOmitted":{"events":2500`, "report.json says so")

	var md bytes.Buffer
	require.NoError(t, reports.Markdown{}.Render(&md, rec))
	require.Contains(t, md.String(), "The timeline keeps the first and the last 1000 events; the 2500 events between +1s and +3.499s (probe 2500)",
		"the Markdown report says what it left out")
	require.Contains(t, md.String(), "| `checkout` | 4499 | **449** (10.0%) | +10ms |", "the totals count the omitted observations")
}

// TestShortTimelineIsWhole: a run within the bound keeps every event and
// says nothing of omissions.
func TestShortTimelineIsWhole(t *testing.T) {
	rec := &reports.Record{}
	for i := range 10 {
		rec.AppendEvent(reports.Event{At: time.Duration(i), Kind: reports.EventProbe, Source: "p", OK: true})
	}
	require.Len(t, rec.Timeline, 10)
	require.Nil(t, rec.TimelineOmitted)
}

// TestMarkdownStatesResponseCaps: answers larger than a probe's maxResponse
// are named in the report, failed ones and cut ones alike.
func TestMarkdownStatesResponseCaps(t *testing.T) {
	rec := &reports.Record{Verdict: reports.Failed}
	for range 2 {
		rec.AppendEvent(reports.Event{Kind: reports.EventProbe, Source: "errors", Message: "response larger than 1MiB (the probe's maxResponse): response too large"})
	}
	rec.AppendEvent(reports.Event{Kind: reports.EventProbe, Source: "script", OK: true, Values: map[string]any{"truncated": true}})
	var md bytes.Buffer
	require.NoError(t, reports.Markdown{}.Render(&md, rec))
	require.Contains(t, md.String(), "Response caps: `errors` failed 2 times with an answer larger than its maxResponse; `script` had its output cut at its maxResponse 1 time.")
}
