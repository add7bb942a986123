package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst reorders a command line so that every flag of the command comes
// before its arguments: `chaos run FILE --report-dir DIR` becomes `chaos run
// --report-dir DIR FILE`. urfave/cli/v2 (like Go's flag package) stops at
// the first argument, while kubectl and promtool users put flags anywhere.
// It is done once here, from each command's own flag definitions, so that no
// command has to know. `--` still ends the flags: what follows is an
// argument even if it starts with a dash.
//
// args is os.Args as given (the program name first). Global flags (before
// the command) and command lines this does not understand are left alone,
// so that urfave/cli reports their mistakes as it always did.
func flagsFirst(cmds []*cli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	// Global flags: chaos has only booleans (--help, --version).
	for len(rest) > 0 && isFlag(rest[0]) {
		out = append(out, rest[0])
		rest = rest[1:]
	}
	// The command, then its subcommands, as far as they go.
	var cmd *cli.Command
	for len(rest) > 0 {
		next := findCommand(cmds, rest[0])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		out = append(out, rest[0])
		rest = rest[1:]
	}
	if cmd == nil {
		return args
	}
	var flags, positional []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case isFlag(a):
			flags = append(flags, a)
			if !strings.Contains(a, "=") && takesValue(cmd, a) && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, flags...)
	if slices.ContainsFunc(positional, func(a string) bool { return strings.HasPrefix(a, "-") }) {
		// Keep an argument that looks like a flag an argument.
		out = append(out, "--")
	}
	return append(out, positional...)
}

// isFlag says whether a word is a flag: it starts with a dash and is more
// than a dash ("-" alone conventionally means standard input).
func isFlag(a string) bool {
	return len(a) > 1 && a[0] == '-' && a != "--"
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// takesValue says whether the flag word a (`-o`, `--report-dir`) names a
// flag of cmd that takes a value. An unknown flag takes none: the parser
// then says it is not defined.
func takesValue(cmd *cli.Command, a string) bool {
	name := strings.TrimLeft(a, "-")
	for _, f := range cmd.Flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(cli.DocGenerationFlag); ok {
			return v.TakesValue()
		}
		return false
	}
	return false
}
