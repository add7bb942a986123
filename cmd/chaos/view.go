package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
)

// viewEvery is how often the live view is redrawn: often enough to watch
// a countdown, rarely enough not to flood a slow terminal or SSH session.
const viewEvery = 250 * time.Millisecond

// isTerminal reports whether w is a terminal that can redraw in place:
// not a pipe, a file or a CI log, and not TERM=dumb.
func isTerminal(w io.Writer) bool {
	return os.Getenv("TERM") != "dumb" && fileIsTerminal(w)
}

// fileIsTerminal reports whether v, a reader or a writer, is a terminal:
// not merely a character device (/dev/null is one), but a file the
// terminal ioctl answers for.
func fileIsTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalWidth is w's width in columns, or 100 when it cannot be told.
func terminalWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return int(ws.Col)
		}
	}
	return 100
}

// progressState is what the live view shows, kept from the engine's
// progress events. It is plain data: render turns it into lines.
type progressState struct {
	start   engine.Start
	began   time.Time
	phase   string
	faults  []faultState
	probes  map[string]probeState
	spent   time.Duration
	allowed time.Duration
	budget  bool // an error budget is measured
	alert   string
}

type faultState struct {
	f        reports.Fault
	state    string // planned, live, reverted, failed
	injected time.Time
}

type probeState struct {
	ok     bool
	values string
	n      int
	failed int
}

func newProgressState(s engine.Start, now time.Time) *progressState {
	p := &progressState{start: s, began: now, phase: "starting", probes: map[string]probeState{}}
	for _, f := range s.Faults {
		p.faults = append(p.faults, faultState{f: f, state: "planned"})
	}
	return p
}

// event updates the state with e, seen at now.
func (p *progressState) event(e reports.Event, now time.Time) {
	switch e.Kind {
	case reports.EventPhase:
		if e.Source == "" {
			p.phase = e.Message
		}
	case reports.EventInject:
		if i := p.fault(e.Source, "planned"); i >= 0 {
			p.faults[i].state, p.faults[i].injected = "live", now
		}
	case reports.EventRevert:
		if i := p.fault(e.Source, "live"); i >= 0 {
			p.faults[i].state = "reverted"
		}
	case reports.EventProbe:
		ps := p.probes[e.Source]
		ps.n++
		ps.ok = e.OK
		if !e.OK {
			ps.failed++
		}
		ps.values = formatValues(e.Values)
		p.probes[e.Source] = ps
	case reports.EventDeviation, reports.EventAbort, reports.EventError:
		p.alert = string(e.Kind) + ": " + e.Message
	}
}

// fault is the first fault of plugin in state, or -1.
func (p *progressState) fault(plugin, state string) int {
	for i, f := range p.faults {
		if f.f.Plugin == plugin && f.state == state {
			return i
		}
	}
	return -1
}

// render is the view at now, one string per line, each at most width
// columns (a wrapped line would break the redraw).
func (p *progressState) render(now time.Time, width int) []string {
	elapsed := now.Sub(p.began)
	lines := []string{
		fmt.Sprintf("chaos run %s · %s elapsed · %s left of %s", p.start.Name,
			elapsed.Round(100*time.Millisecond), max(p.start.MaxDuration-elapsed, 0).Round(time.Second), p.start.MaxDuration),
		"phase: " + p.phase,
	}
	for _, f := range p.faults {
		l := fmt.Sprintf("fault %s on %s: %s", f.f.Plugin, f.f.Target, f.state)
		if f.state == "live" {
			if f.f.For > 0 {
				l += fmt.Sprintf(", %s left", max(f.f.For-now.Sub(f.injected), 0).Round(100*time.Millisecond))
			} else {
				l += ", until the fault phase ends"
			}
		}
		lines = append(lines, l)
	}
	for _, n := range p.start.Probes { // sorted
		ps, seen := p.probes[n]
		if !seen {
			lines = append(lines, fmt.Sprintf("probe %s: no observation yet", n))
			continue
		}
		mark := "ok"
		if !ps.ok {
			mark = "FAIL"
		}
		lines = append(lines, fmt.Sprintf("probe %s: %s %s (%d observed, %d failed)", n, mark, ps.values, ps.n, ps.failed))
	}
	budget := fmt.Sprintf("budget: %d abort condition(s)", p.start.AbortWhen)
	if p.budget {
		budget += fmt.Sprintf(", error budget spent %s of %s", p.spent.Round(time.Millisecond), p.allowed)
	}
	lines = append(lines, budget)
	if p.alert != "" {
		lines = append(lines, p.alert)
	}
	for i, l := range lines {
		lines[i] = cut(l, width-1)
	}
	return lines
}

// formatValues is a probe's latest values, short: ok and error are said by
// the mark and the message, the rest as key=value, sorted.
func formatValues(v map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range v {
			if !yield(k) {
				return
			}
		}
	}) {
		switch k {
		case "ok", "vector", "stdout", "stderr", "body":
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, v[k]))
	}
	return strings.Join(parts, " ")
}

// cut shortens s to n runes, marking the cut.
func cut(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if n < 2 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// liveView draws the run's progress on a terminal, in place, and is the
// writer of the run's log lines so that they scroll above the view rather
// than through it.
type liveView struct {
	out, logs io.Writer
	now       func() time.Time

	mu    sync.Mutex
	state *progressState
	drawn int // lines drawn last time

	stop chan struct{}
	wg   sync.WaitGroup
}

func newLiveView(out, logs io.Writer) *liveView {
	v := &liveView{out: out, logs: logs, now: time.Now, stop: make(chan struct{})}
	v.wg.Go(v.loop)
	return v
}

func (v *liveView) loop() {
	t := time.NewTicker(viewEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			v.mu.Lock()
			v.drawLocked()
			v.mu.Unlock()
		case <-v.stop:
			return
		}
	}
}

// Close draws the view a last time and leaves it on the screen, above the
// verdict.
func (v *liveView) Close() {
	close(v.stop)
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.drawLocked()
	v.drawn = 0
}

func (v *liveView) drawLocked() {
	if v.state == nil {
		return
	}
	v.eraseLocked()
	lines := v.state.render(v.now(), terminalWidth(v.out))
	_, _ = io.WriteString(v.out, strings.Join(lines, "\n")+"\n")
	v.drawn = len(lines)
}

// eraseLocked moves the cursor to the first line of the view and clears
// from there down.
func (v *liveView) eraseLocked() {
	if v.drawn > 0 {
		_, _ = fmt.Fprintf(v.out, "\r\x1b[%dA\x1b[J", v.drawn)
		v.drawn = 0
	}
}

// Write prints a log line above the view.
func (v *liveView) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.eraseLocked()
	n, err := v.logs.Write(p)
	v.drawLocked()
	return n, err
}

func (v *liveView) Started(s engine.Start) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.state = newProgressState(s, v.now())
	v.drawLocked()
}

func (v *liveView) Event(e reports.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.state != nil {
		v.state.event(e, v.now())
	}
}

func (v *liveView) Budget(spent, allowance time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	// A run without an error budget measures none: nothing to show.
	if v.state != nil && allowance > 0 {
		v.state.budget, v.state.spent, v.state.allowed = true, spent, allowance
	}
}

// logProgress is the progress of a run that is not on a terminal (CI, a
// pipe): one structured log line per event. Probe observations and budget
// measurements are debug lines; phases, faults and what went wrong are
// info and warn lines.
type logProgress struct{ log *slog.Logger }

func (l logProgress) Started(s engine.Start) {
	l.log.Info("run started", "experiment", s.Name, "faults", len(s.Faults), "probes", strings.Join(s.Probes, ","),
		"maxDuration", s.MaxDuration.String())
}

func (l logProgress) Event(e reports.Event) {
	level := slog.LevelInfo
	switch e.Kind {
	case reports.EventProbe:
		level = slog.LevelDebug
	case reports.EventDeviation, reports.EventAbort, reports.EventError:
		level = slog.LevelWarn
	}
	attrs := []any{"kind", string(e.Kind), "at", e.At.Round(time.Millisecond).String(), "ok", e.OK}
	if e.Source != "" {
		attrs = append(attrs, "source", e.Source)
	}
	if e.Kind == reports.EventProbe && len(e.Values) > 0 {
		attrs = append(attrs, "values", formatValues(e.Values))
	}
	msg := e.Message
	if msg == "" {
		msg = string(e.Kind)
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

func (l logProgress) Budget(spent, allowance time.Duration) {
	l.log.Debug("error budget", "spent", spent.String(), "allowance", allowance.String())
}
