package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/plugins/plugindir"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

var (
	pluginDirFlag = &cli.StringFlag{
		Name:    "plugin-dir",
		Usage:   "where installed plugins (chaos-plugin-NAME) live (`DIR`; default $XDG_DATA_HOME/chaos/plugins or ~/.local/share/chaos/plugins)",
		EnvVars: []string{"CHAOS_PLUGIN_DIR"},
	}
	pluginLockFlag = &cli.StringFlag{
		Name:    "plugin-lock",
		Usage:   "lock `FILE` pinning installed plugins by SHA-256 (default: plugins.lock next to the experiment file, else in the plugin directory)",
		EnvVars: []string{"CHAOS_PLUGIN_LOCK"},
	}
	allowUnpinnedFlag = &cli.BoolFlag{
		Name:  "allow-unpinned",
		Usage: "let installed plugins that the lock file does not pin run (a pinned plugin whose binary differs is still refused)",
	}
)

// pluginFlags are the flags of every command that starts plugins.
func pluginFlags() []cli.Flag {
	return []cli.Flag{pluginDirFlag, pluginLockFlag, allowUnpinnedFlag}
}

// pluginSource resolves plugin names for an experiment file (its lock file
// is found next to it): built-in plugins from this binary, installed ones
// from the plugin directory, checked against the lock file.
func pluginSource(c *cli.Context, experimentFile string) plugindir.Source {
	dir := c.String(pluginDirFlag.Name)
	if dir == "" {
		dir = plugindir.DefaultDir()
	}
	return plugindir.Source{
		Dir:            dir,
		LockPath:       plugindir.FindLock(c.String(pluginLockFlag.Name), experimentFile, dir),
		AllowUnpinned:  c.Bool(allowUnpinnedFlag.Name),
		Builtins:       builtin.Names(),
		BuiltinCommand: selfPlugin,
	}
}

func pluginsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "plugins",
		Usage: "inspect, install-check and pin fault plugins",
		Subcommands: []*cli.Command{{
			Name:  "list",
			Usage: "list built-in and installed fault plugins: versions, target kinds, SHA-256 and whether each is pinned",
			Flags: pluginFlags(),
			Action: func(c *cli.Context) error {
				src := pluginSource(c, "")
				src.LockPath = plugindir.FindLock(c.String(pluginLockFlag.Name), "plugins.lock", src.Dir)
				return listPlugins(c.Context, src, stdout)
			},
		}, {
			Name:      "lock",
			Usage:     "pin installed plugins by SHA-256 in the lock file (each is started once to ask its name and version)",
			ArgsUsage: "[NAME...]",
			Flags:     []cli.Flag{pluginDirFlag, &cli.StringFlag{Name: pluginLockFlag.Name, Value: plugindir.LockFileName, EnvVars: pluginLockFlag.EnvVars, Usage: "the lock `FILE` to write or update; commit it next to your experiments"}},
			Action: func(c *cli.Context) error {
				src := pluginSource(c, "")
				src.LockPath = c.String(pluginLockFlag.Name)
				return lockPlugins(c.Context, src, c.Args().Slice(), stdout)
			},
		}},
	}
}

// listPlugins prints every plugin. An installed plugin is started (to ask
// its version and target kinds) only when it would be allowed to run: a
// binary that is not pinned, or differs from its pin, is listed from what
// is known without running it.
func listPlugins(ctx context.Context, src plugindir.Source, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "NAME\tVERSION\tTARGETS\tSOURCE\tSHA256\tPINNED\tSUMMARY")
	faults := builtin.Faults()
	for _, name := range builtin.Names() {
		d := faults[name]().Describe()
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\tbuilt-in\t-\t-\t%s\n", d.Name, d.Version, strings.Join(d.TargetKinds, ","), d.Summary)
	}
	installed, err := plugindir.List(src.Dir)
	if err != nil {
		_ = tw.Flush()
		return pluginExit(err)
	}
	lock, err := src.ReadLock()
	if err != nil {
		_ = tw.Flush()
		return pluginExit(err)
	}
	for _, in := range installed {
		version, targets, sum, pinned, summary := "-", "-", "-", "no", ""
		if slices.Contains(src.Builtins, in.Name) {
			_, _ = fmt.Fprintf(tw, "%s\t-\t-\t%s\t-\tREFUSED\tshadows the built-in %s; remove or rename it\n", in.Name, in.Path, in.Name)
			continue
		}
		v, err := src.Hash(in.Name)
		if err != nil {
			_, _ = fmt.Fprintf(tw, "%s\t-\t-\t%s\t-\tREFUSED\t%v\n", in.Name, in.Path, err)
			continue
		}
		sum = v.SHA256
		pin, ok := pinOf(lock, in.Name)
		switch {
		case ok && pin.SHA256 != v.SHA256:
			pinned, version, summary = "SUM DIFFERS", pin.Version, "refused: the lock file pins sha256:"+pin.SHA256
		case ok || src.AllowUnpinned:
			if ok {
				pinned = "yes"
			}
			d, err := describe(ctx, in.Name, v)
			if err != nil {
				summary = "does not start: " + err.Error()
				break
			}
			version, targets, summary = d.Version, strings.Join(d.TargetKinds, ","), d.Summary
		default:
			summary = "not started: pin it with `chaos plugins lock`, or list with --allow-unpinned"
		}
		_ = v.File.Close()
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, version, targets, in.Path, sum, pinned, summary)
	}
	return tw.Flush()
}

// pinOf returns lock's pin of name; a nil lock pins nothing.
func pinOf(lock *plugindir.Lock, name string) (plugindir.Pin, bool) {
	if lock == nil {
		return plugindir.Pin{}, false
	}
	p, ok := lock.Pins[name]
	return p, ok
}

// lockPlugins pins the named installed plugins (all of them when none is
// named) in the lock file, keeping the pins of others. Each is started once
// from the bytes hashed, to read its name and version; a plugin that says
// another name than its file's is refused.
func lockPlugins(ctx context.Context, src plugindir.Source, names []string, stdout io.Writer) error {
	lock, err := plugindir.ReadLock(src.LockPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		lock = &plugindir.Lock{Path: src.LockPath, Pins: map[string]plugindir.Pin{}}
	case err != nil:
		return pluginExit(err)
	}
	if len(names) == 0 {
		installed, err := plugindir.List(src.Dir)
		if err != nil {
			return pluginExit(err)
		}
		for _, in := range installed {
			names = append(names, in.Name)
		}
		if len(names) == 0 {
			return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("no plugins installed in %s (files named %sNAME); nothing to pin", src.Dir, plugindir.Prefix)}
		}
	}
	for _, name := range names {
		if slices.Contains(src.Builtins, name) {
			return pluginExit(fmt.Errorf("%s%s in %s: %w %s; built-in plugins cannot be replaced or pinned: remove or rename the file", plugindir.Prefix, name, src.Dir, plugindir.ErrShadowsBuiltin, name))
		}
		v, err := src.Hash(name)
		if err != nil {
			return pluginExit(err)
		}
		d, err := describe(ctx, name, v)
		_ = v.File.Close()
		if err != nil {
			return pluginExit(fmt.Errorf("pin %s: %w", name, err))
		}
		if d.Name != name {
			return &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("%s says its name is %q: install it as %s%s, or fix the plugin", v.Path, d.Name, plugindir.Prefix, d.Name)}
		}
		old, had := lock.Pins[name]
		lock.Pins[name] = plugindir.Pin{Name: name, Version: d.Version, SHA256: v.SHA256}
		switch {
		case !had:
			_, _ = fmt.Fprintf(stdout, "pinned %s %s sha256:%s\n", name, d.Version, v.SHA256)
		case old.SHA256 != v.SHA256:
			_, _ = fmt.Fprintf(stdout, "re-pinned %s %s sha256:%s (was %s sha256:%s)\n", name, d.Version, v.SHA256, old.Version, old.SHA256)
		default:
			_, _ = fmt.Fprintf(stdout, "unchanged %s %s sha256:%s\n", name, d.Version, v.SHA256)
		}
	}
	if err := plugindir.WriteLock(src.LockPath, lock); err != nil {
		return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
	}
	_, _ = fmt.Fprintf(stdout, "wrote %s\n", src.LockPath)
	return nil
}

// describe starts the verified binary once, asks what it is, and closes it.
func describe(ctx context.Context, name string, v *plugindir.Verified) (sdk.Description, error) {
	open := engine.ExecPlugins{Command: func(string) (*exec.Cmd, error) { return v.Command(), nil }}
	pl, err := open.Open(ctx, name)
	if err != nil {
		return sdk.Description{}, err
	}
	defer pl.Close()
	return pl.Describe(ctx)
}

// pluginExit is the exit of a command stopped by a plugin it may not use:
// refused (5) for what the machine holds (a binary that differs from its
// pin, an unsafe directory, another protocol version), invalid (3) for bad
// input (a lock file, a name), error (4) otherwise.
func pluginExit(err error) error {
	code := reports.Error.ExitCode()
	switch {
	case errors.Is(err, plugindir.ErrBadLock), errors.Is(err, plugindir.ErrNotInstalled):
		code = reports.Invalid.ExitCode()
	case errors.Is(err, plugindir.ErrChecksumMismatch), errors.Is(err, plugindir.ErrNotPinned),
		errors.Is(err, plugindir.ErrShadowsBuiltin), errors.Is(err, plugindir.ErrUnsafe), errors.Is(err, sdk.ErrProtocolMismatch):
		code = reports.Refused.ExitCode()
	}
	return &exitError{code: code, msg: err.Error()}
}

// selfPlugin runs a built-in plugin in a new process of this same binary.
func selfPlugin(name string) (*exec.Cmd, error) {
	if _, ok := builtin.Faults()[name]; !ok {
		return nil, fmt.Errorf("no plugin named %q (built-in: %s)", name, strings.Join(builtin.Names(), ", "))
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	return exec.Command(self, "plugin", "serve", name), nil
}
