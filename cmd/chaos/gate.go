package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/reports"
)

// Exit codes of `chaos gate` besides 0 (open): 1 closed, 3 a bad flag, 4 a
// history that cannot be read (a record the gate cannot trust closes nothing
// and opens nothing: it stops the pipeline with the file's name).
const (
	gateClosed     = 1
	gateBadUsage   = 3
	gateUnreadable = 4
)

// gateFlags are the flags `chaos run` takes for the pipeline mode.
func gateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "gate", Usage: "pipeline mode: write report.json and report.junit.xml to --report-dir, print one summary line, exit with the verdict's code"},
		&cli.StringFlag{Name: "history", Usage: "also keep the record as `DIR`/<run>/report.json, for chaos gate --history"},
	}
}

// gateRun is `chaos run --gate`: no terminal view and no per-file lines,
// the JUnit report beside the JSON one, one summary line on stdout and the
// verdict's exit code. The report directory is required: a pipeline must
// know where its JUnit file is before the run, to collect it after.
func gateRun(c *cli.Context, runner *engine.Runner, path string, stdout, stderr io.Writer) error {
	if c.String("report-dir") == "" {
		return &exitError{code: reports.Invalid.ExitCode(), msg: "--gate needs --report-dir DIR: the pipeline collects report.junit.xml from it"}
	}
	if c.Bool("dry-run") {
		return &exitError{code: reports.Invalid.ExitCode(), msg: "--gate and --dry-run do not go together: a dry run decides nothing"}
	}
	var (
		reportPaths []string
		reportErr   error
	)
	runner.ReportFormats = append(runner.ReportFormats, reports.FormatJUnit)
	runner.Reported = func(paths []string, err error) { reportPaths, reportErr = paths, err }
	ctx, stop := interruptible(c.Context, stderr)
	defer stop()
	rec := runner.RunFile(ctx, path)

	// The full reason of a file that did not load (every error with its
	// line and column) and anything left behind go to the log; stdout has
	// the one line a pipeline's summary shows.
	if strings.Contains(strings.TrimSpace(rec.Reason), "\n") {
		_, _ = fmt.Fprintln(stderr, "chaos:", rec.Reason)
	}
	for _, l := range rec.Leftovers {
		_, _ = fmt.Fprintf(stderr, "LEFT BEHIND: %s\n", l)
	}
	junit := filepath.Join(c.String("report-dir"), reports.JUnitFile)
	cause := ""
	if rec.Cause != "" {
		cause = ", cause " + string(rec.Cause)
	}
	_, _ = fmt.Fprintf(stdout, "chaos gate: %s %s (exit %d%s) — %s; junit %s\n",
		oneLine(rec.Experiment.Name), rec.Verdict, rec.Verdict.ExitCode(), cause, firstLine(rec.Reason), junit)
	if reportErr != nil {
		_, _ = fmt.Fprintf(stderr, "chaos: write report: %v (written: %s)\n", reportErr, strings.Join(reportPaths, ", "))
		return &exitError{code: reports.Error.ExitCode()}
	}
	if code := rec.Verdict.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i]) + " …"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// gateCommand is the freshness gate over a history of runs.
func gateCommand(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "gate",
		Usage: "pass only when every required experiment has a recent passed run in a history",
		Description: "Exit 0: every experiment matching --require has a passed run that started within --within and no later failed or aborted run.\n" +
			"Exit 1: something required is missing, stale or failing (each is named). Exit 3: a bad flag. Exit 4: the history cannot be read.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "history", Usage: "`DIR` of past runs' records (chaos run --history DIR), read recursively"},
			&cli.StringSliceFlag{Name: "require", Usage: "a `GLOB` on experiment names (checkout-*); repeat for more"},
			&cli.StringFlag{Name: "within", Value: "7d", Usage: "how recent a passed run must be: 7d, 36h, 1d12h"},
			&cli.TimestampFlag{Name: "at", Layout: time.RFC3339, Usage: "decide as of `TIME` (RFC 3339) instead of now, to replay a past decision"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return &exitError{code: gateBadUsage, msg: fmt.Sprintf("gate takes no arguments (got %q); use --history and --require", c.Args().First())}
			}
			if c.String("history") == "" || len(c.StringSlice("require")) == 0 {
				return &exitError{code: gateBadUsage, msg: "gate needs --history DIR and at least one --require GLOB"}
			}
			within, err := reports.ParseWithin(c.String("within"))
			if err != nil {
				return &exitError{code: gateBadUsage, msg: "--within " + err.Error()}
			}
			required := c.StringSlice("require")
			if err := reports.CheckGatePatterns(required); err != nil {
				return &exitError{code: gateBadUsage, msg: err.Error()}
			}
			now := time.Now()
			if at := c.Timestamp("at"); at != nil {
				now = *at
			}
			dir := c.String("history")
			history, err := reports.ReadHistory(dir)
			switch {
			case errors.Is(err, fs.ErrNotExist) && !exists(dir):
				// A first pipeline has no history yet: that is "missing",
				// said as such, not a crash.
				_, _ = fmt.Fprintf(stderr, "chaos gate: history %s does not exist yet\n", dir)
			case err != nil:
				return &exitError{code: gateUnreadable, msg: fmt.Sprintf("read history %s: %v", dir, err)}
			}
			res := reports.Gate(history, required, within, now)
			for _, it := range res.Items {
				name := it.Experiment
				if name == "" {
					name = it.Pattern
				}
				_, _ = fmt.Fprintf(stdout, "%-7s %s: %s\n", strings.ToUpper(string(it.Status)), name, it.Describe(within))
			}
			if res.Open {
				_, _ = fmt.Fprintf(stdout, "gate open: every required experiment passed within %s\n", c.String("within"))
				return nil
			}
			_, _ = fmt.Fprintf(stdout, "gate closed: run the experiments above (or fix what they found) before releasing\n")
			return &exitError{code: gateClosed}
		},
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
