package reports_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// t0 is when every test run starts. Times are UTC so that the JSON golden
// files do not depend on the machine's time zone.
var t0 = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

const ms = time.Millisecond

func at(d time.Duration) time.Time { return t0.Add(d) }

func breach(d time.Duration) *time.Duration { return &d }

// The records below hold only values that survive a JSON round trip
// unchanged (strings, float64, bool), because that is what a record read
// back from report.json holds.

func checkoutExperiment() reports.Experiment {
	return reports.Experiment{
		Name:       "checkout-survives-slow-upstream",
		File:       "experiments/examples/checkout-latency.yaml",
		Hypothesis: "Checkout answers under 300 ms while its upstream is 200 ms slower.",
		Owner: reports.Owner{
			Team:    "payments",
			Email:   "payments-oncall@example.com",
			Webhook: "https://hooks.example.com/services/T000/B000/not-for-reports",
		},
	}
}

const (
	checkoutExpr = `checkout.status == 200 && checkout.latency < duration("300ms")`
	replicasExpr = `replicas.ready >= 2 || replicas.desired == 0`
	budgetExpr   = `failureRatio("checkout", "30s") > 0.05`
)

// checkoutProbes returns one HTTP probe observation a second from from
// (inclusive) to to (exclusive), shifted by 200ms so that they do not
// coincide with the phase boundaries. observe decides each observation.
func checkoutProbes(from, to time.Duration, observe func(i int, at time.Duration) (ok bool, status float64, latency time.Duration)) []reports.Event {
	var events []reports.Event
	for i, off := 0, from+200*ms; off < to; i, off = i+1, off+time.Second {
		ok, status, latency := observe(i, off)
		e := reports.Event{
			At:     off,
			Kind:   reports.EventProbe,
			Source: "checkout",
			OK:     ok,
			Values: map[string]any{"status": status, "latency": latency.String()},
		}
		if !ok {
			e.Message = "timeout after 1s"
		}
		events = append(events, e)
	}
	return events
}

// healthy is a checkout that answers in 12ms give or take a millisecond.
func healthy(i int, _ time.Duration) (bool, float64, time.Duration) {
	return true, 200, 12*ms + time.Duration(i%5)*300*time.Microsecond
}

func errorRatioProbes(from, to time.Duration) []reports.Event {
	var events []reports.Event
	for off := from; off < to; off += 5 * time.Second {
		events = append(events, reports.Event{
			At: off, Kind: reports.EventProbe, Source: "errors", OK: true,
			Values: map[string]any{"ratio": 0.001},
		})
	}
	return events
}

// timeline merges event lists in time order, keeping the order of the
// arguments for events at the same offset.
func timeline(lists ...[]reports.Event) []reports.Event {
	var all []reports.Event
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortStableFunc(all, func(a, b reports.Event) int {
		return int(a.At - b.At)
	})
	return all
}

func phase(off time.Duration, name string) reports.Event {
	return reports.Event{At: off, Kind: reports.EventPhase, Source: name, OK: true}
}

func latencyFault(injected, reverted time.Duration) reports.Fault {
	f := reports.Fault{
		Index:  0,
		Plugin: "latency",
		Target: "upstream",
		Params: map[string]string{"mode": "proxy", "delay": "200ms", "jitter": "10ms"},
		After:  10 * time.Second,
		For:    30 * time.Second,
		State:  "planned",
	}
	if injected > 0 {
		f.InjectedAt, f.State = at(injected), "injected"
	}
	if reverted > 0 {
		f.RevertedAt, f.State = at(reverted), "reverted"
	}
	return f
}

func passedRecord() *reports.Record {
	return &reports.Record{
		RunID:      "run-20250314-093000-7f3a",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(50*time.Second + 40*ms),
		Verdict:    reports.Passed,
		Reason:     "The steady state held before, during and after the faults.",
		Faults:     []reports.Fault{latencyFault(10*time.Second+4*ms, 40*time.Second+12*ms)},
		SteadyState: []reports.Check{
			{Phase: reports.Before, Expression: checkoutExpr, Evaluated: 10, Held: 10},
			{Phase: reports.During, Expression: checkoutExpr, Evaluated: 30, Held: 30},
			{Phase: reports.After, Expression: checkoutExpr, Evaluated: 10, Held: 10},
		},
		Timeline: timeline(
			[]reports.Event{
				phase(0, "before"),
				phase(10*time.Second, "during"),
				{At: 10*time.Second + 4*ms, Kind: reports.EventInject, Source: "latency", OK: true, Message: "latency on upstream"},
				{At: 40*time.Second + 12*ms, Kind: reports.EventRevert, Source: "latency", OK: true, Message: "latency on upstream"},
				phase(40*time.Second+20*ms, "after"),
			},
			checkoutProbes(0, 10*time.Second, healthy),
			checkoutProbes(10*time.Second, 40*time.Second, func(i int, _ time.Duration) (bool, float64, time.Duration) {
				return true, 200, 214*ms + time.Duration(i%7)*ms
			}),
			checkoutProbes(40*time.Second, 50*time.Second, healthy),
			errorRatioProbes(0, 50*time.Second),
		),
	}
}

func failedRecord() *reports.Record {
	podkill := reports.Fault{
		Index:      1,
		Plugin:     "podkill",
		Target:     "pods",
		Params:     map[string]string{"pick": "count=1", "gracePeriod": "0s"},
		After:      20 * time.Second,
		InjectedAt: at(20*time.Second + 31*ms),
		RevertedAt: at(40*time.Second + 15*ms),
		State:      "reverted",
		Detail: "shop/checkout-7d9f-x2k4p (uid 5f1c2a9e-0b1d-4e4a-9c1e-3d2b7a6f8e01, node kwok-node-0) killed at 2025-03-14T09:30:20.031Z, " +
			"replacement shop/checkout-7d9f-q8m2z Ready at 2025-03-14T09:30:21.4Z (after 1.369s)",
	}
	return &reports.Record{
		RunID:      "run-20250314-093000-b21c",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(50*time.Second + 90*ms),
		Verdict:    reports.Failed,
		Reason:     "checkout.latency went above 300ms at +14.2s while latency was injected on upstream.",
		Faults:     []reports.Fault{latencyFault(10*time.Second+4*ms, 40*time.Second+12*ms), podkill},
		SteadyState: []reports.Check{
			// Listed out of phase order on purpose: the report sorts them.
			{Phase: reports.After, Expression: checkoutExpr, Evaluated: 10, Held: 10},
			{Phase: reports.After, Expression: replicasExpr, Evaluated: 2, Held: 2},
			{Phase: reports.Before, Expression: checkoutExpr, Evaluated: 10, Held: 10},
			{Phase: reports.Before, Expression: replicasExpr, Evaluated: 2, Held: 2},
			{
				Phase: reports.During, Expression: checkoutExpr, Evaluated: 30, Held: 4,
				FirstBreach: breach(14*time.Second + 200*ms), Detail: "checkout.latency was 412ms, above 300ms",
			},
			{
				Phase: reports.During, Expression: replicasExpr, Evaluated: 6, Held: 5,
				FirstBreach: breach(25 * time.Second), Detail: "replicas.ready was 1 | desired 3",
			},
		},
		Timeline: timeline(
			[]reports.Event{
				phase(0, "before"),
				phase(10*time.Second, "during"),
				{At: 10*time.Second + 4*ms, Kind: reports.EventInject, Source: "latency", OK: true, Message: "latency on upstream"},
				{
					At: 14*time.Second + 200*ms, Kind: reports.EventDeviation, Source: "steady-state",
					Message: checkoutExpr + " did not hold",
					Values:  map[string]any{"checkout.latency": "412ms", "checkout.status": 200.0},
				},
				{At: 20*time.Second + 31*ms, Kind: reports.EventInject, Source: "podkill", OK: true, Message: "deleted pod shop/checkout-7d9c5b6f4-x2x7q"},
				{
					At: 25 * time.Second, Kind: reports.EventDeviation, Source: "steady-state",
					Message: replicasExpr + " did not hold",
					Values:  map[string]any{"replicas.ready": 1.0, "replicas.desired": 3.0},
				},
				{At: 40*time.Second + 12*ms, Kind: reports.EventRevert, Source: "latency", OK: true, Message: "latency on upstream"},
				{At: 40*time.Second + 15*ms, Kind: reports.EventRevert, Source: "podkill", OK: true, Message: "nothing to revert: pods are recreated by their ReplicaSet"},
				phase(40*time.Second+20*ms, "after"),
			},
			checkoutProbes(0, 10*time.Second, healthy),
			checkoutProbes(10*time.Second, 40*time.Second, func(_ int, off time.Duration) (bool, float64, time.Duration) {
				switch {
				case off < 14*time.Second:
					return true, 200, 231 * ms
				case off >= 20*time.Second && off < 23*time.Second:
					return false, 0, time.Second
				default:
					return true, 200, 412*ms + (off%(3*time.Second))/100
				}
			}),
			checkoutProbes(40*time.Second, 50*time.Second, healthy),
		),
	}
}

func abortedRecord() *reports.Record {
	f := latencyFault(10*time.Second+4*ms, 18*time.Second+610*ms)
	f.Params["delay"] = "800ms"
	return &reports.Record{
		RunID:      "run-20250314-093000-c0de",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(28*time.Second + 700*ms),
		Verdict:    reports.Aborted,
		Cause:      "budget",
		Reason:     `The budget ` + budgetExpr + ` tripped at +18.5s with a failure ratio of 0.24.`,
		Budget: []reports.BudgetCondition{
			{Expression: budgetExpr, Tripped: true, At: breach(18*time.Second + 500*ms), Detail: "observed checkout{failureRatio=0.24}"},
			{Expression: `checkout.latency > duration("2s")`},
		},
		ErrorBudget:  &reports.BudgetSpend{Allowance: 51*time.Second + 840*ms, Spent: 8*time.Second + 400*ms},
		TimeToSafety: func() *time.Duration { d := 3*ms + 200*time.Microsecond; return &d }(),
		Faults:       []reports.Fault{f},
		SteadyState: []reports.Check{
			{Phase: reports.Before, Expression: checkoutExpr, Evaluated: 10, Held: 10},
			{
				Phase: reports.During, Expression: checkoutExpr, Evaluated: 8, Held: 2,
				FirstBreach: breach(12*time.Second + 200*ms), Detail: "checkout.status was 0 (timeout after 1s)",
			},
			{Phase: reports.After, Expression: checkoutExpr, Evaluated: 10, Held: 10},
		},
		Timeline: timeline(
			[]reports.Event{
				phase(0, "before"),
				phase(10*time.Second, "during"),
				{At: 10*time.Second + 4*ms, Kind: reports.EventInject, Source: "latency", OK: true, Message: "latency on upstream"},
				{
					At: 12*time.Second + 200*ms, Kind: reports.EventDeviation, Source: "steady-state",
					Message: checkoutExpr + " did not hold",
					Values:  map[string]any{"checkout.latency": "1s", "checkout.status": 0.0},
				},
				{
					At: 18*time.Second + 500*ms, Kind: reports.EventAbort, Source: "budget",
					Message: budgetExpr + " held: the failure ratio was 0.24",
					Values:  map[string]any{"expression": budgetExpr, "failureRatio": 0.24},
				},
				{At: 18*time.Second + 610*ms, Kind: reports.EventRevert, Source: "latency", OK: true, Message: "latency on upstream"},
				phase(18*time.Second+700*ms, "after"),
			},
			checkoutProbes(0, 10*time.Second, healthy),
			checkoutProbes(10*time.Second, 18*time.Second+600*ms, func(_ int, off time.Duration) (bool, float64, time.Duration) {
				if off < 12*time.Second {
					return true, 200, 823 * ms
				}
				return false, 0, time.Second
			}),
			checkoutProbes(18*time.Second+600*ms, 28*time.Second+600*ms, healthy),
		),
	}
}

func errorRecord() *reports.Record {
	f := latencyFault(10*time.Second+4*ms, 0)
	f.State = "left"
	f.Error = "revert: plugin process is gone | rpc error: code = Unavailable desc = connection refused"
	return &reports.Record{
		RunID:      "run-20250314-093000-dead",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(12*time.Second + 500*ms),
		Verdict:    reports.Error,
		Reason:     "The latency plugin exited while its fault was live, and the revert could not be confirmed.",
		Faults: []reports.Fault{
			f,
			{
				Index: 1, Plugin: "cpustress", Target: "node",
				Params: map[string]string{"cores": "2", "load": "80%"},
				After:  20 * time.Second, For: 10 * time.Second, State: "planned",
			},
		},
		SteadyState: []reports.Check{
			{Phase: reports.Before, Expression: checkoutExpr, Evaluated: 10, Held: 10},
			{Phase: reports.During, Expression: checkoutExpr, Evaluated: 2, Held: 2},
			{Phase: reports.After, Expression: checkoutExpr},
		},
		Timeline: timeline(
			[]reports.Event{
				phase(0, "before"),
				phase(10*time.Second, "during"),
				{At: 10*time.Second + 4*ms, Kind: reports.EventInject, Source: "latency", OK: true, Message: "latency on upstream"},
				{
					At: 12 * time.Second, Kind: reports.EventError, Source: "plugin/latency",
					Message: "plugin latency exited unexpectedly: exit status 2",
					Values:  map[string]any{"exitStatus": 2.0, "pid": 48213.0},
				},
				{At: 12*time.Second + 100*ms, Kind: reports.EventRevert, Source: "latency", Message: "revert latency on upstream: plugin process is gone"},
			},
			checkoutProbes(0, 10*time.Second, healthy),
			checkoutProbes(10*time.Second, 12*time.Second, func(int, time.Duration) (bool, float64, time.Duration) {
				return true, 200, 213 * ms
			}),
		),
		Leftovers: []string{
			"latency on upstream: the proxy on 127.0.0.1:18080 may still delay traffic to 127.0.0.1:8080 by 200ms",
		},
	}
}

func invalidRecord() *reports.Record {
	return &reports.Record{
		RunID:      "run-20250314-093000-0bad",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(40 * ms),
		Verdict:    reports.Invalid,
		Reason:     `experiments/examples/checkout-latency.yaml:14:7: unknown field "withh" in fault 1`,
		Faults:     []reports.Fault{latencyFault(0, 0)},
	}
}

// refusedRecord is a run the environment refused: another run held its
// target, so nothing was touched.
func refusedRecord() *reports.Record {
	return &reports.Record{
		RunID:      "run-20250314-093000-10cd",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(30 * ms),
		Verdict:    reports.Refused,
		Cause:      "target-locked",
		Reason:     `refusing to start: target "endpoint:127.0.0.1:18080" is held by run run-20250314-092900-77aa (pid 4242): target is locked by another run; nothing was touched`,
		Faults:     []reports.Fault{latencyFault(0, 0)},
	}
}

func notSteadyBeforeRecord() *reports.Record {
	return &reports.Record{
		RunID:      "run-20250314-093000-5ad0",
		Experiment: checkoutExperiment(),
		StartedAt:  t0,
		EndedAt:    at(10*time.Second + 300*ms),
		Verdict:    reports.Failed,
		Reason:     "not steady before the experiment",
		Faults:     []reports.Fault{latencyFault(0, 0)},
		SteadyState: []reports.Check{
			{
				Phase: reports.Before, Expression: checkoutExpr, Evaluated: 10, Held: 3,
				FirstBreach: breach(2*time.Second + 200*ms), Detail: "checkout.status was 503",
			},
		},
		Timeline: timeline(
			[]reports.Event{
				phase(0, "before"),
				{
					At: 2*time.Second + 200*ms, Kind: reports.EventDeviation, Source: "steady-state",
					Message: checkoutExpr + " did not hold",
					Values:  map[string]any{"checkout.status": 503.0, "checkout.latency": "3.1ms"},
				},
			},
			checkoutProbes(0, 10*time.Second, func(i int, off time.Duration) (bool, float64, time.Duration) {
				if off < 2*time.Second {
					return true, 200, 12 * ms
				}
				return true, 503, 3*ms + 100*time.Microsecond
			}),
		),
	}
}

// cases are the records that have golden files, one per verdict and then
// the failed run that never got to inject.
var cases = []struct {
	name   string
	record func() *reports.Record
}{
	{"passed", passedRecord},
	{"failed", failedRecord},
	{"aborted", abortedRecord},
	{"error-leftovers", errorRecord},
	{"invalid", invalidRecord},
	{"refused", refusedRecord},
	{"failed-not-steady-before", notSteadyBeforeRecord},
}

func render(t *testing.T, r reports.Renderer, rec *reports.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, r.Render(&buf, rec), "rendering a well-formed record must succeed")
	return buf.Bytes()
}

// checkGolden compares got with testdata/name, or rewrites the file when the
// test runs with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file %s must exist; run go test ./reports/ -update to create it", path)
	require.Equal(t, string(want), string(got),
		"output must match %s; if the change is intended, review the diff and run go test ./reports/ -update", path)
}

func TestMarkdownGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name+".md.golden", render(t, reports.Markdown{}, c.record()))
		})
	}
}

func TestJSONGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name+".json.golden", render(t, reports.JSON{}, c.record()))
		})
	}
}

func TestJSONRoundTrips(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.record()
			var got reports.Record
			require.NoError(t, json.Unmarshal(render(t, reports.JSON{}, want), &got),
				"report.json must be valid JSON that decodes into a Record")
			require.Equal(t, *want, got,
				"report.json is the full record: decoding it must give back exactly the record that was rendered")
		})
	}
}

func TestRenderingIsDeterministic(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []reports.Renderer{reports.Markdown{}, reports.JSON{}} {
				first := render(t, r, c.record())
				for range 5 {
					require.Equal(t, string(first), string(render(t, r, c.record())),
						"the same record must render to the same bytes every time (map order must not leak into the output), or golden files and diffs of reports are useless")
				}
			}
		})
	}
}

func TestMarkdownDoesNotDependOnTheTimeZone(t *testing.T) {
	utc := render(t, reports.Markdown{}, failedRecord())

	zone := time.FixedZone("UTC-7", -7*60*60)
	rec := failedRecord()
	rec.StartedAt, rec.EndedAt = rec.StartedAt.In(zone), rec.EndedAt.In(zone)
	for i := range rec.Faults {
		rec.Faults[i].InjectedAt = rec.Faults[i].InjectedAt.In(zone)
		rec.Faults[i].RevertedAt = rec.Faults[i].RevertedAt.In(zone)
	}
	require.Equal(t, string(utc), string(render(t, reports.Markdown{}, rec)),
		"a report read by a team in another time zone must say the same thing: times are offsets and the start is in UTC")
}

// TestMarkdownTablesKeepTheirColumns checks that no cell content (an
// expression with ||, an error with a |) can split a cell and shift the
// columns of a table.
func TestMarkdownTablesKeepTheirColumns(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			md := string(render(t, reports.Markdown{}, c.record()))
			columns := -1
			for line := range strings.Lines(md) {
				line = strings.TrimRight(line, "\n")
				if !strings.HasPrefix(line, "|") {
					columns = -1
					continue
				}
				n := unescapedPipes(line)
				if columns < 0 {
					columns = n
					continue
				}
				require.Equal(t, columns, n,
					"every row must have as many cell separators as its table's header, or the table renders shifted: %q", line)
			}
		})
	}
}

func unescapedPipes(line string) int {
	n := 0
	for i := range len(line) {
		if line[i] == '|' && (i == 0 || line[i-1] != '\\') {
			n++
		}
	}
	return n
}

func TestMarkdownNeverPrintsTheWebhook(t *testing.T) {
	for _, c := range cases {
		md := string(render(t, reports.Markdown{}, c.record()))
		require.NotContains(t, md, "hooks.example.com",
			"%s: a webhook URL usually carries a credential, and the Markdown report is pasted into tickets", c.name)
	}
}

func TestMarkdownLeftoversOnlyWhenThereAreSome(t *testing.T) {
	for _, c := range cases {
		md := string(render(t, reports.Markdown{}, c.record()))
		if len(c.record().Leftovers) == 0 {
			require.NotContains(t, md, "Leftovers",
				"%s: a Leftovers section with nothing in it would alarm the team for no reason", c.name)
			continue
		}
		require.Contains(t, md, "### ⚠️ Leftovers — something may still be broken",
			"%s: leftovers mean a fault may still be live, and the report must say so loudly", c.name)
		require.Contains(t, md, "`chaos recover`",
			"%s: the team must be told how to clean up what was left", c.name)
	}
}

func TestMarkdownReadsEveryFormOfLatency(t *testing.T) {
	probe := func(off time.Duration, latency any) reports.Event {
		return reports.Event{At: off, Kind: reports.EventProbe, Source: "api", OK: true, Values: map[string]any{"latency": latency}}
	}
	rec := &reports.Record{
		Experiment: reports.Experiment{Name: "latency-forms"},
		StartedAt:  t0,
		EndedAt:    at(5 * time.Second),
		Verdict:    reports.Passed,
		Timeline: []reports.Event{
			probe(0, 10*ms),                  // a time.Duration, as the engine holds it in memory
			probe(1*time.Second, 0.020),      // float seconds
			probe(2*time.Second, "30ms"),     // a duration string, as the engine records it
			probe(3*time.Second, "fast"),     // not a duration: counted, but no latency
			probe(4*time.Second, int64(5e6)), // a bare integer is ambiguous (ns or s?): ignored
		},
	}
	md := string(render(t, reports.Markdown{}, rec))
	require.Contains(t, md, "| `api` | 5 | 0 | — | 10ms / 20ms / 30ms |",
		"every observation counts, and min/median/max come from the three latencies that can be read without guessing their unit")
}

func TestRenderersRefuseANilRecord(t *testing.T) {
	for _, r := range []reports.Renderer{reports.Markdown{}, reports.JSON{}} {
		var buf bytes.Buffer
		require.ErrorIs(t, r.Render(&buf, nil), reports.ErrNilRecord,
			"%T: a nil record is a caller bug and must be reported as such, not rendered as an empty report", r)
		require.Zero(t, buf.Len(), "%T must not write anything when it fails", r)
	}
	_, err := reports.WriteFiles(t.TempDir(), nil)
	require.ErrorIs(t, err, reports.ErrNilRecord, "WriteFiles must refuse a nil record like the renderers do")
}

func TestRendererFuncIsARenderer(t *testing.T) {
	var got *reports.Record
	var r reports.Renderer = reports.RendererFunc(func(w io.Writer, r *reports.Record) error {
		got = r
		_, err := io.WriteString(w, string(r.Verdict))
		return err
	})
	rec := passedRecord()
	require.Equal(t, "passed", string(render(t, r, rec)), "RendererFunc must write what the function writes")
	require.Same(t, rec, got, "RendererFunc must hand the function the record it was given")
}

func TestWriteFiles(t *testing.T) {
	// A directory that does not exist yet, as on the first run of a schedule.
	dir := filepath.Join(t.TempDir(), "reports", "run-1")

	for _, rec := range []*reports.Record{failedRecord(), passedRecord()} {
		paths, err := reports.WriteFiles(dir, rec)
		require.NoError(t, err, "writing reports into a fresh or existing directory must succeed")
		require.Equal(t, []string{filepath.Join(dir, "report.json"), filepath.Join(dir, "report.md")}, paths,
			"WriteFiles must return the paths it wrote, so the CLI can print them")

		require.Equal(t, string(render(t, reports.JSON{}, rec)), readFile(t, paths[0]),
			"report.json must hold the JSON rendering of the record, and replace an older report whole")
		require.Equal(t, string(render(t, reports.Markdown{}, rec)), readFile(t, paths[1]),
			"report.md must hold the Markdown rendering of the record, and replace an older report whole")

		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		require.Equal(t, []string{"report.json", "report.md"}, names,
			"only the two reports may be left in the directory: a stray temporary file means a write was not cleaned up")

		info, err := os.Stat(paths[1])
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o644), info.Mode().Perm(),
			"reports are for the whole team to read, not private like a temporary file")
	}
}

func TestWriteFilesWritesNothingWhenTheRecordCannotBeRendered(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	rec := passedRecord()
	// JSON has no NaN, so this record cannot be encoded.
	rec.Timeline[0].Values = map[string]any{"ratio": math.NaN()}

	paths, err := reports.WriteFiles(dir, rec)
	require.Error(t, err, "a record that cannot be encoded as JSON must be reported, not written half")
	require.Empty(t, paths, "no report may be claimed as written")
	_, err = os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist,
		"both reports are rendered before anything touches the disk, so a failed render leaves no directory and no partial file")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err, "%s must have been written", path)
	return string(data)
}

func ExampleMarkdown() {
	rec := &reports.Record{
		RunID: "run-42",
		Experiment: reports.Experiment{
			Name:       "search-survives-a-lost-pod",
			Hypothesis: "Search keeps answering while one of its pods is killed.",
			Owner:      reports.Owner{Team: "search", Email: "search@example.com"},
		},
		StartedAt: time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC),
		EndedAt:   time.Date(2025, 3, 14, 9, 30, 30, 0, time.UTC),
		Verdict:   reports.Passed,
		Reason:    "The steady state held before, during and after the faults.",
		Faults: []reports.Fault{{
			Plugin: "podkill", Target: "search-pods",
			Params:     map[string]string{"pick": "count=1"},
			After:      10 * time.Second,
			InjectedAt: time.Date(2025, 3, 14, 9, 30, 10, 2e6, time.UTC),
			RevertedAt: time.Date(2025, 3, 14, 9, 30, 20, 0, time.UTC),
			State:      "reverted",
		}},
		SteadyState: []reports.Check{
			{Phase: reports.During, Expression: "search.status == 200", Evaluated: 10, Held: 10},
		},
		Timeline: []reports.Event{
			{At: 11 * time.Second, Kind: reports.EventProbe, Source: "search", OK: true, Values: map[string]any{"latency": "8.25ms"}},
			{At: 12 * time.Second, Kind: reports.EventProbe, Source: "search", OK: true, Values: map[string]any{"latency": "9.5ms"}},
		},
	}
	if err := (reports.Markdown{}).Render(os.Stdout, rec); err != nil {
		panic(err)
	}
	// Output:
	// ## ✅ Passed — search-survives-a-lost-pod
	//
	// To: search (search@example.com)
	//
	// **The hypothesis held: the service stayed healthy before, during and after the faults.**
	//
	// Why: The steady state held before, during and after the faults.
	//
	// Run `run-42` · started 2025-03-14 09:30:00 UTC · took 30s · exit code 0
	//
	// ### Hypothesis
	//
	// > Search keeps answering while one of its pods is killed.
	//
	// ### What was done
	//
	// 1 fault planned, 1 injected, 1 reverted.
	//
	// | Plugin | Target | Parameters | Schedule | Injected | Reverted | State | Error |
	// | --- | --- | --- | --- | --- | --- | --- | --- |
	// | `podkill` | `search-pods` | `pick=count=1` | after 10s, until the fault phase ends | +10.002s | +20s | reverted | |
	//
	// ### Steady state
	//
	// | Phase | Expression | Held | First breach | Detail |
	// | --- | --- | --- | --- | --- |
	// | during | `search.status == 200` | 10 of 10 | — | |
	//
	// ### What broke first
	//
	// Nothing broke: the run recorded no deviation, abort or error.
	//
	// ### Probes
	//
	// | Probe | Observations | Failed | First failure | Latency min / median / max |
	// | --- | --- | --- | --- | --- |
	// | `search` | 2 | 0 | — | 8.3ms / 8.9ms / 9.5ms |
	//
	// ### What to look at next
	//
	// The service took these faults the way its owners expected. An experiment that always passes stops teaching anything: next time, raise the fault intensity (a longer delay, a longer window, more targets) or add a fault this service has not met yet.
	//
	// Running the experiment on a schedule (`chaos schedule`) turns this result into a regression check.
}

func TestHTMLGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name+".html.golden", render(t, reports.HTML{}, c.record()))
		})
	}
}

func TestJUnitGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, c.name+".junit.xml.golden", render(t, reports.JUnit{}, c.record()))
		})
	}
}
