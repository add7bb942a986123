package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// Game day errors.
var (
	// ErrGameDayAborted: someone aborted the game day (chaos gameday abort,
	// or a signal); what was live was reverted and the rest did not run.
	ErrGameDayAborted = errors.New("the game day was aborted")
	// ErrNotWaiting: `chaos gameday continue` found no game day of that
	// name waiting at a checkpoint.
	ErrNotWaiting = errors.New("no game day of that name is waiting at a checkpoint")
)

// GameDayReportFile is the combined report of a game day.
const GameDayReportFile = "gameday.md"

// pollEvery is how often a game day looks for a continue or abort file.
const pollEvery = 250 * time.Millisecond

// GameDay runs a game day file: its steps in order, each experiment
// through RunFile (engine.Runner's, as for `chaos run`), each checkpoint
// waiting for a person. Day and RunFile are required.
type GameDay struct {
	Day     *experiments.GameDay
	RunFile RunFunc
	// Dir is where the game day's control files live (the state
	// directory's gamedays/NAME): `waiting` while at a checkpoint,
	// `continue-N` and `abort` written by `chaos gameday`.
	Dir string
	// ReportDir receives a folder per experiment and the combined report.
	ReportDir string
	// Notes go into the combined report.
	Notes []string
	// Confirm, when set, asks at a checkpoint (a terminal prompt); it
	// returns nil to go on. The control files are watched as well.
	Confirm func(ctx context.Context, message string) error
	Clock   clock.Clock
	Log     *slog.Logger
}

// StepResult is what one step came to.
type StepResult struct {
	Step        *experiments.GameDayStep
	Record      *reports.Record // nil for a checkpoint or a step not reached
	ConfirmedAt time.Time
}

// Run runs the steps. It returns the results of every step reached and
// ErrGameDayAborted (or ctx's cause) when the game day was stopped; the
// combined report is written either way.
func (g *GameDay) Run(ctx context.Context) ([]StepResult, error) {
	if g.Log == nil {
		g.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("game day state: %w", err)
	}
	// Control files of an earlier game day of this name mean nothing now.
	_ = clearControl(g.Dir)
	defer func() { _ = clearControl(g.Dir) }()

	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		g.watchAbort(watchCtx, abort)
	}()
	defer func() { stopWatch(); <-watched }()

	var out []StepResult
	var err error
	for i, st := range g.Day.Spec.Steps {
		if err = context.Cause(ctx); err != nil {
			break
		}
		r := StepResult{Step: st}
		if st.Checkpoint != "" {
			if err = g.checkpoint(ctx, i, st.Checkpoint); err != nil {
				break
			}
			r.ConfirmedAt = clock.Or(g.Clock).Now()
			out = append(out, r)
			continue
		}
		files, _ := experiments.ExpandExperiments(g.Day.File, st.Experiment)
		if len(files) != 1 {
			err = fmt.Errorf("step %d: %q names %d files", i, st.Experiment, len(files))
			break
		}
		dir := ""
		if g.ReportDir != "" {
			dir = filepath.Join(g.ReportDir, fmt.Sprintf("%02d-%s", i+1, strings.TrimSuffix(filepath.Base(files[0]), filepath.Ext(files[0]))))
		}
		g.Log.Info("experiment", "gameday", g.Day.Metadata.Name, "step", i, "file", files[0])
		r.Record = g.RunFile(ctx, files[0], dir)
		g.Log.Info("ran", "gameday", g.Day.Metadata.Name, "step", i, "verdict", r.Record.Verdict, "cause", r.Record.Cause)
		out = append(out, r)
	}
	if err == nil {
		err = context.Cause(ctx)
	}
	if g.ReportDir != "" {
		if werr := os.WriteFile(filepath.Join(g.ReportDir, GameDayReportFile), []byte(GameDayMarkdown(g.Day, g.Notes, out, err)), 0o644); werr != nil {
			err = errors.Join(err, fmt.Errorf("write the game day report: %w", werr))
		}
	}
	return out, err
}

// checkpoint waits until a person confirms step i: a continue file, or
// Confirm (a terminal prompt), whichever comes first.
func (g *GameDay) checkpoint(ctx context.Context, i int, message string) error {
	if err := writeFileAtomic(filepath.Join(g.Dir, "waiting"), []byte(strconv.Itoa(i)+"\n"+message+"\n")); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer func() { _ = os.Remove(filepath.Join(g.Dir, "waiting")) }()
	// Said once the waiting file is there: whoever reads this line can
	// confirm at once.
	g.Log.Info("checkpoint", "gameday", g.Day.Metadata.Name, "step", i, "message", message)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	confirmed := make(chan error, 1)
	if g.Confirm != nil {
		go func() { confirmed <- g.Confirm(ctx, message) }()
	}
	cont := filepath.Join(g.Dir, "continue-"+strconv.Itoa(i))
	clk := clock.Or(g.Clock)
	for {
		if _, err := os.Stat(cont); err == nil {
			return nil
		}
		t := clk.NewTimer(pollEvery)
		select {
		case err := <-confirmed:
			t.Stop()
			if err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			return nil
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C():
		}
	}
}

// watchAbort cancels the game day when an abort file appears: the live
// experiment's run is cancelled (it aborts and reverts) and no further step
// starts.
func (g *GameDay) watchAbort(ctx context.Context, abort context.CancelCauseFunc) {
	clk := clock.Or(g.Clock)
	path := filepath.Join(g.Dir, "abort")
	for {
		if b, err := os.ReadFile(path); err == nil {
			reason := strings.TrimSpace(string(b))
			abort(fmt.Errorf("%w: %s", ErrGameDayAborted, reason))
			return
		}
		t := clk.NewTimer(pollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// Continue confirms the checkpoint the game day named name is waiting at,
// in the state directory's gamedays folder dir.
func Continue(dir string) (step int, message string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "waiting"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, "", ErrNotWaiting
	}
	if err != nil {
		return 0, "", fmt.Errorf("read the checkpoint: %w", err)
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	step, err = strconv.Atoi(first)
	if err != nil {
		return 0, "", fmt.Errorf("the checkpoint file is corrupt: %w", ErrNotWaiting)
	}
	if err := writeFileAtomic(filepath.Join(dir, "continue-"+first), nil); err != nil {
		return 0, "", err
	}
	return step, strings.TrimSpace(rest), nil
}

// Abort asks the game day in dir to stop: what is live is reverted and the
// rest does not run.
func Abort(dir, reason string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%w: %w", ErrNotWaiting, err)
	}
	return writeFileAtomic(filepath.Join(dir, "abort"), []byte(reason+"\n"))
}

func clearControl(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		n := e.Name()
		if n == "waiting" || n == "abort" || strings.HasPrefix(n, "continue-") {
			_ = os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// GameDayMarkdown is the combined report: to every owner, the notes, and
// every experiment's verdict and timeline summary.
func GameDayMarkdown(day *experiments.GameDay, notes []string, results []StepResult, stopped error) string {
	var b strings.Builder
	owners := map[string]bool{}
	var to []string
	for _, r := range results {
		if r.Record != nil && r.Record.Experiment.Owner.Team != "" && !owners[r.Record.Experiment.Owner.Team] {
			owners[r.Record.Experiment.Owner.Team] = true
			to = append(to, r.Record.Experiment.Owner.Team)
		}
	}
	fmt.Fprintf(&b, "# Game day %s\n\n", day.Metadata.Name)
	if len(to) > 0 {
		fmt.Fprintf(&b, "To: %s\n\n", strings.Join(to, ", "))
	}
	ran := 0
	for _, r := range results {
		if r.Record != nil {
			ran++
		}
	}
	total := 0
	for _, st := range day.Spec.Steps {
		if st.Experiment != "" {
			total++
		}
	}
	if stopped != nil {
		fmt.Fprintf(&b, "**Stopped early**: %v. %d of %d experiments ran; whatever was live was reverted (see each report).\n\n", stopped, ran, total)
	} else {
		fmt.Fprintf(&b, "All %d experiments ran.\n\n", total)
	}
	if len(notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Steps\n\n")
	for i, st := range day.Spec.Steps {
		if st.Checkpoint != "" {
			state := "not reached"
			if i < len(results) && !results[i].ConfirmedAt.IsZero() {
				state = "confirmed at " + results[i].ConfirmedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(&b, "%d. Checkpoint: %s (%s)\n", i+1, st.Checkpoint, state)
			continue
		}
		if i >= len(results) || results[i].Record == nil {
			fmt.Fprintf(&b, "%d. %s: not run\n", i+1, st.Experiment)
			continue
		}
		r := results[i].Record
		fmt.Fprintf(&b, "%d. **%s** (owner %s): **%s**", i+1, r.Experiment.Name, r.Experiment.Owner.Team, r.Verdict)
		if r.Cause != "" {
			fmt.Fprintf(&b, " (%s)", r.Cause)
		}
		fmt.Fprintf(&b, " — %s\n", r.Reason)
		fmt.Fprintf(&b, "   - %s, %s\n", r.StartedAt.Format(time.RFC3339), r.EndedAt.Sub(r.StartedAt).Round(time.Millisecond))
		for _, f := range r.Faults {
			fmt.Fprintf(&b, "   - fault %s on %s: %s\n", f.Plugin, f.Target, f.State)
		}
		counts := map[reports.EventKind]int{}
		failed := 0
		for _, e := range r.Timeline {
			counts[e.Kind]++
			if e.Kind == reports.EventProbe && !e.OK {
				failed++
			}
		}
		fmt.Fprintf(&b, "   - timeline: %d probe observations (%d failed), %d deviations, %d aborts\n",
			counts[reports.EventProbe], failed, counts[reports.EventDeviation], counts[reports.EventAbort])
		for _, l := range r.Leftovers {
			fmt.Fprintf(&b, "   - LEFT BEHIND: %s\n", l)
		}
	}
	return b.String()
}
