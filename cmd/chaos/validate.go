package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/kubeconfig"
	"github.com/chaos-run/chaos/plugins/plugindir"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// validateCommand checks files and runs nothing. Unless --offline, each
// fault's `with` parameters are checked by its plugin, started as it would
// be for a run, so third-party plugins get the same checking as built-in
// ones; each plugin is started once for all the files.
func validateCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check experiment files without running anything",
		ArgsUsage: "FILE...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "`FORMAT` of the problems: text (file:line:col: message (hint)) or json (an array of {file, line, col, path, message, hint})"},
			&cli.BoolFlag{Name: "offline", Usage: "start no plugin and read no secret: the faults' `with` parameters are not checked, and an unset ${env:NAME} is a note, not a problem"},
			pluginDirFlag, pluginLockFlag, allowUnpinnedFlag,
			kubeconfigFlag, kubeContextFlag,
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "validate takes one or more experiment files"}
			}
			format := c.String("output")
			if format != "text" && format != "json" {
				return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--output %q: use text or json", format)}
			}
			var plugins *pluginPool
			if !c.Bool("offline") {
				kube, err := kubeSource(c)
				if err != nil {
					return err
				}
				plugins = &pluginPool{open: map[string]*sharedPlugin{}, kube: kube}
				defer plugins.closeAll()
			}
			source := func(file string) plugindir.Source { return pluginSource(c, file) }
			results, err := validateFiles(c.Context, c.Args().Slice(), plugins, source)
			if err != nil {
				// A plugin chaos refused to start exits as a run would be
				// (refused, or invalid for a bad lock file).
				ee := pluginExit(err).(*exitError)
				ee.msg += " (--offline skips the plugins)"
				return ee
			}
			bad := false
			for _, r := range results {
				bad = bad || len(r.problems) > 0
			}
			if format == "json" {
				if err := writeProblemsJSON(stdout, results); err != nil {
					return err
				}
			} else {
				writeProblemsText(stdout, results)
			}
			if bad {
				return &exitError{code: reports.Invalid.ExitCode()}
			}
			return nil
		},
	}
}

// fileResult is what validate found in one file: nothing, or problems. A
// file that could not be read has one problem without a position.
type fileResult struct {
	file     string
	problems []experiments.Problem
	// notes are worth saying but wrong with nothing: a secret not set
	// offline.
	notes []experiments.Problem
}

// validateFiles checks each file; plugins is nil offline, where secrets
// need not be set. source gives the plugins of a file (its lock file is
// found next to it). The error is for a plugin that could not be started
// or did not answer.
func validateFiles(ctx context.Context, paths []string, plugins *pluginPool, source func(file string) plugindir.Source) ([]fileResult, error) {
	results := make([]fileResult, 0, len(paths))
	paths = append([]string(nil), paths...)
	for i := 0; i < len(paths); i++ {
		path := paths[i]
		if rs, ok := validateList(path); ok {
			// A schedule or game day: its own problems, and then the
			// experiment files it names, checked as experiments.
			results = append(results, rs[0])
			for _, r := range rs[1:] {
				paths = append(paths, r.file)
			}
			continue
		}
		r := fileResult{file: path}
		src := source(path)
		opts := experiments.Options{Plugins: src.Names(), AllowUnsetSecrets: plugins == nil,
			Notes: func(p experiments.Problem) { r.notes = append(r.notes, p) }}
		exp, err := experiments.Load(path, opts)
		var fe *experiments.FileError
		switch {
		case errors.As(err, &fe):
			r.problems = fe.Problems
		case err != nil:
			r.problems = []experiments.Problem{{Message: err.Error()}}
		case plugins != nil:
			probs, err := engine.ValidateFaults(ctx, exp, plugins.forSource(src))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			r.problems = probs
		}
		results = append(results, r)
	}
	return results, nil
}

func writeProblemsText(w io.Writer, results []fileResult) {
	for _, r := range results {
		fe := &experiments.FileError{File: r.file}
		for _, n := range r.notes {
			n.Message = "note: " + n.Message
			_, _ = fmt.Fprintln(w, fe.Format(n))
		}
		if len(r.problems) == 0 {
			_, _ = fmt.Fprintf(w, "%s: ok\n", r.file)
			continue
		}
		for _, p := range r.problems {
			if p.Pos.Line == 0 {
				_, _ = fmt.Fprintf(w, "%s: %s\n", r.file, p.Message)
				continue
			}
			_, _ = fmt.Fprintln(w, fe.Format(p))
		}
	}
}

// jsonProblem is one problem in `validate --output json`. Every key is
// always there; line and col are 0 when a file could not be read. Severity
// is "error" for a problem, "note" for what offline could not check (an
// unset secret); only errors make the exit code 3.
type jsonProblem struct {
	Severity string `json:"severity"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Path     string `json:"path"`
	Message  string `json:"message"`
	Hint     string `json:"hint"`
}

func writeProblemsJSON(w io.Writer, results []fileResult) error {
	out := []jsonProblem{}
	for _, r := range results {
		for _, n := range r.notes {
			out = append(out, jsonProblem{Severity: "note", File: r.file, Line: n.Pos.Line, Col: n.Pos.Col, Path: n.Path, Message: n.Message, Hint: n.Hint})
		}
		for _, p := range r.problems {
			out = append(out, jsonProblem{Severity: "error", File: r.file, Line: p.Pos.Line, Col: p.Pos.Col, Path: p.Path, Message: p.Message, Hint: p.Hint})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// pluginPool opens each plugin once for every file validate checks (once
// per lock file: files in different directories may pin different
// binaries), asks it to describe itself once, and closes them all at the
// end.
type pluginPool struct {
	open map[string]*sharedPlugin
	// kube is the cluster --kubeconfig and --context name for the plugins.
	kube kubeconfig.Source
}

// forSource is the pool as the engine.Plugins of files whose plugins src
// resolves.
func (p *pluginPool) forSource(src plugindir.Source) engine.Plugins {
	return poolView{pool: p, src: src}
}

type poolView struct {
	pool *pluginPool
	src  plugindir.Source
}

// Open implements engine.Plugins; closing what it returns does nothing.
func (v poolView) Open(ctx context.Context, name string) (engine.FaultPlugin, error) {
	key := v.src.LockPath + "\x00" + name
	if pl, ok := v.pool.open[key]; ok {
		return pl, nil
	}
	pl, err := engine.ExecPlugins{Command: pluginCommandWith(v.pool.kube, v.src.Command)}.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	sp := &sharedPlugin{FaultPlugin: pl}
	v.pool.open[key] = sp
	return sp, nil
}

func (p *pluginPool) closeAll() {
	for _, pl := range p.open {
		pl.FaultPlugin.Close()
	}
}

// sharedPlugin is a plugin of the pool: the pool closes it, and its
// description does not change while it runs.
type sharedPlugin struct {
	engine.FaultPlugin
	desc *sdk.Description
}

// Describe asks the plugin once.
func (p *sharedPlugin) Describe(ctx context.Context) (sdk.Description, error) {
	if p.desc == nil {
		d, err := p.FaultPlugin.Describe(ctx)
		if err != nil {
			return d, err
		}
		p.desc = &d
	}
	return *p.desc, nil
}

// Close does nothing: the pool closes the plugin when validate is done.
func (*sharedPlugin) Close() {}
