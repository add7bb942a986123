package reports

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file lays out the HTML report's probe timeline: one small chart per
// probe on a shared time axis, so a reader sees at a glance which probe
// moved when a fault went live. Geometry is computed here, in plain numbers;
// the template only draws it, escaped.

// The chart's geometry in SVG user units; the SVG scales to the page width.
const (
	chartWidth  = 1000.0
	chartHeight = 150.0
	plotLeft    = 78.0
	plotRight   = 16.0
	plotTop     = 14.0
	plotBottom  = 26.0
)

// SeriesColour is the colour of the i-th probe's line in the HTML chart,
// probes in order of their names. The colours are kept apart from the red
// of failures and breaches and the amber of fault windows; the HTML test
// looks for them in a screenshot.
func SeriesColour(i int) string {
	colours := [...]string{"#1f6feb", "#8250df", "#1a7f37", "#0598bc", "#9a6700", "#57606a"}
	return colours[i%len(colours)]
}

type chartView struct {
	Width, Height   float64
	Left, Right     float64
	Top, Bottom     float64
	Probe, Metric   string
	Colour          string
	Lines           []string // polyline point lists; a gap in the timeline splits the line
	Dots            []chartDot
	Failures        []chartDot
	Windows         []chartSpan
	Omitted         *chartSpan
	Marks           []chartMark
	XTicks, YTicks  []chartTick
	Empty           string // why nothing is drawn, when nothing is
	Observations    int
	FailedCount     int
	PlotW, PlotH    float64
	PlotBottomY     float64
	PlotRightX      float64
	FirstAxisLabels bool
}

type chartDot struct {
	X, Y  float64
	Title string
}

type chartSpan struct {
	X, W  float64
	Title string
}

type chartMark struct {
	X      float64
	Kind   string // breach, abort, error
	Title  string
	Label  string
	LabelX float64
	Anchor string
}

type chartTick struct {
	X, Y  float64
	Label string
}

// metricOf picks what to plot for a probe from its observations: value for
// a Prometheus query, duration for a command, latency for http and tcp,
// ready replicas for a workload, ready pods for pods by selector. Its unit
// decides the axis.
func metricOf(events []Event) (name string, duration bool) {
	has := func(k string, num bool) bool {
		for _, e := range events {
			v, ok := e.Values[k]
			if !ok {
				continue
			}
			if !num {
				if _, isDur := latencyOf(v); isDur {
					return true
				}
				continue
			}
			if _, isNum := numberOf(v); isNum {
				return true
			}
		}
		return false
	}
	switch {
	case has("value", true):
		return "value", false
	case has("duration", false):
		return "duration", true
	case has("latency", false):
		return "latency", true
	case has("ready", true):
		return "ready", false
	case has("podsReady", true):
		// A kubernetes probe of pods by selector, which has no workload.
		return "podsReady", false
	}
	return "", false
}

func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case float32:
		return numberOf(float64(x))
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

// span is the time the charts cover: the whole run, and every event in it.
func span(r *Record) time.Duration {
	end := runLength(r)
	for _, e := range r.Timeline {
		end = max(end, e.At)
	}
	if end <= 0 {
		end = time.Second
	}
	return end
}

// charts lays out one chart per probe, in the order of their names.
func charts(r *Record) []chartView {
	bySource := map[string][]Event{}
	for _, e := range r.Timeline {
		if e.Kind == EventProbe {
			bySource[e.Source] = append(bySource[e.Source], e)
		}
	}
	total := span(r)
	plotW := chartWidth - plotLeft - plotRight
	plotH := chartHeight - plotTop - plotBottom
	x := func(d time.Duration) float64 {
		return round1(plotLeft + plotW*float64(d)/float64(total))
	}
	windows := faultWindows(r, total, x)
	marks := chartMarks(r, x)
	xticks := timeTicks(total, x)
	var omitted *chartSpan
	if g := r.TimelineOmitted; g != nil && g.Events > 0 {
		omitted = &chartSpan{X: x(g.From), W: max(1, x(g.To)-x(g.From)),
			Title: fmt.Sprintf("%d events between %s and %s are not in the record's timeline", g.Events, formatOffset(g.From), formatOffset(g.To))}
	}

	var out []chartView
	for i, name := range sortedKeys(bySource) {
		events := bySource[name]
		metric, isDur := metricOf(events)
		c := chartView{
			Width: chartWidth, Height: chartHeight, Left: plotLeft, Right: plotRight, Top: plotTop, Bottom: plotBottom,
			PlotW: plotW, PlotH: plotH, PlotBottomY: plotTop + plotH, PlotRightX: plotLeft + plotW,
			Probe: name, Metric: metric, Colour: SeriesColour(i), Windows: windows, Omitted: omitted,
			Marks: marks, XTicks: xticks, Observations: len(events), FirstAxisLabels: i == 0,
		}
		type point struct {
			at time.Duration
			v  float64
			ok bool
		}
		var pts []point
		hi := 0.0
		for _, e := range events {
			v, ok := 0.0, false
			if metric != "" {
				if isDur {
					if d, isD := latencyOf(e.Values[metric]); isD {
						v, ok = float64(d)/float64(time.Millisecond), true
					}
				} else {
					v, ok = numberOf(e.Values[metric])
				}
			}
			if !e.OK {
				c.FailedCount++
			}
			if ok {
				hi = max(hi, v)
			}
			pts = append(pts, point{at: e.At, v: v, ok: ok})
		}
		top := niceCeil(hi)
		y := func(v float64) float64 { return round1(plotTop + plotH - plotH*v/top) }
		unit := ""
		if isDur {
			unit = " ms"
		}
		for _, v := range []float64{0, top / 2, top} {
			c.YTicks = append(c.YTicks, chartTick{Y: y(v), Label: strconv.FormatFloat(v, 'f', -1, 64) + unit})
		}
		var line []string
		flush := func() {
			if len(line) > 1 {
				c.Lines = append(c.Lines, strings.Join(line, " "))
			}
			line = nil
		}
		var prev *point
		for i := range pts {
			p := pts[i]
			title := fmt.Sprintf("%s at %s", name, formatOffset(p.at))
			if p.ok {
				if isDur {
					title += ": " + metric + " " + formatDuration(time.Duration(p.v*float64(time.Millisecond)))
				} else {
					title += ": " + metric + " " + strconv.FormatFloat(p.v, 'f', -1, 64)
				}
			}
			e := events[i]
			if !e.OK {
				if msg := oneLine(e.Message); msg != "" {
					title += " — failed: " + msg
				} else {
					title += " — failed"
				}
				fy := plotTop + 6
				if p.ok {
					fy = y(p.v)
				}
				c.Failures = append(c.Failures, chartDot{X: x(p.at), Y: round1(fy), Title: title})
			}
			if !p.ok {
				flush()
				prev = nil
				continue
			}
			if prev != nil && omitted != nil && r.TimelineOmitted.From >= prev.at && r.TimelineOmitted.To <= p.at && r.TimelineOmitted.From > prev.at {
				flush()
			}
			line = append(line, fmt.Sprintf("%g,%g", x(p.at), y(p.v)))
			if e.OK {
				c.Dots = append(c.Dots, chartDot{X: x(p.at), Y: y(p.v), Title: title})
			}
			prev = &pts[i]
		}
		flush()
		if metric == "" {
			c.Empty = "no numeric value to plot; failures are marked"
		}
		out = append(out, c)
	}
	return out
}

// faultWindows shades each fault from its inject to its revert (or to the
// end, when it was never confirmed reverted).
func faultWindows(r *Record, total time.Duration, x func(time.Duration) float64) []chartSpan {
	var out []chartSpan
	for _, f := range r.Faults {
		if f.InjectedAt.IsZero() {
			continue
		}
		from := f.InjectedAt.Sub(r.StartedAt)
		to, until := total, "never confirmed reverted"
		if !f.RevertedAt.IsZero() {
			to, until = f.RevertedAt.Sub(r.StartedAt), "reverted at "+formatOffset(f.RevertedAt.Sub(r.StartedAt))
		}
		out = append(out, chartSpan{X: x(from), W: max(1, x(to)-x(from)),
			Title: fmt.Sprintf("%s on %s: injected at %s, %s", f.Plugin, f.Target, formatOffset(from), until)})
	}
	return out
}

// chartMarks are the vertical lines of the breaches, the abort and errors.
func chartMarks(r *Record, x func(time.Duration) float64) []chartMark {
	var out []chartMark
	for _, e := range r.Timeline {
		var kind, label string
		switch e.Kind {
		case EventDeviation:
			kind, label = "breach", "breach"
		case EventAbort:
			kind, label = "abort", "abort"
		case EventError:
			kind, label = "error", "error"
		default:
			continue
		}
		title := fmt.Sprintf("%s at %s", label, formatOffset(e.At))
		if msg := oneLine(e.Message); msg != "" {
			title += ": " + msg
		}
		mx := x(e.At)
		anchor, lx := "start", mx+3
		if mx > chartWidth-plotRight-60 {
			anchor, lx = "end", mx-3
		}
		out = append(out, chartMark{X: mx, Kind: kind, Title: title, Label: label, LabelX: lx, Anchor: anchor})
	}
	// A breach that repeats on every observation would draw a wall of
	// lines and labels: keep the first of each kind labelled, the others
	// as lines only.
	seen := map[string]bool{}
	for i := range out {
		if seen[out[i].Kind] {
			out[i].Label = ""
		}
		seen[out[i].Kind] = true
	}
	return out
}

// timeTicks are the time axis's ticks: a round step that gives at most
// ten of them.
func timeTicks(total time.Duration, x func(time.Duration) float64) []chartTick {
	steps := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	}
	step := steps[len(steps)-1]
	if i := slices.IndexFunc(steps, func(s time.Duration) bool { return total/s <= 10 }); i >= 0 {
		step = steps[i]
	}
	var out []chartTick
	for d := time.Duration(0); d <= total; d += step {
		out = append(out, chartTick{X: x(d), Label: formatOffset(d)})
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, so the axis reads
// in round numbers; 1 for nothing to scale.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	v *= 1.05
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }
