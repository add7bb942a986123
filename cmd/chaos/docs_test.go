package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// TestCIExamplesUseRealCommands parses the CI examples in docs/ci and checks
// that every chaos command line in them is a real command with real flags,
// and that each example uses both halves of the gate: `chaos run --gate`
// and `chaos gate`. A pipeline copied from the docs must not fail on a
// renamed flag.
func TestCIExamplesUseRealCommands(t *testing.T) {
	commands := map[string]*cli.Command{}
	for _, c := range []*cli.Command{
		runCommand(io.Discard, io.Discard), gateCommand(io.Discard, io.Discard), reportCommand(io.Discard),
		validateCommand(io.Discard), recoverCommand(io.Discard), abortCommand(io.Discard),
	} {
		commands[c.Name] = c
	}
	for _, file := range []string{"github-actions.yml", "gitlab-ci.yml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("..", "..", "docs", "ci", file))
			require.NoError(t, err, "the CI example must exist")
			var doc any
			require.NoError(t, yaml.Unmarshal(data, &doc), "the CI example must be valid YAML")
			var lines []string
			collectScripts(doc, "", &lines)
			used := map[string]bool{}
			for _, line := range lines {
				words := shellWords(line)
				if len(words) == 0 || words[0] != "chaos" {
					continue
				}
				require.GreaterOrEqual(t, len(words), 2, "%q: a chaos command names a subcommand", line)
				cmd, ok := commands[words[1]]
				require.True(t, ok, "%q: %q is not a chaos command", line, words[1])
				for _, w := range words[2:] {
					if !strings.HasPrefix(w, "-") {
						continue
					}
					name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
					require.True(t, hasFlag(cmd, name), "%q: chaos %s has no flag --%s", line, cmd.Name, name)
					used[cmd.Name+" --"+name] = true
				}
				used[cmd.Name] = true
			}
			require.True(t, used["run --gate"], "the example must run an experiment with chaos run --gate")
			require.True(t, used["gate --history"] && used["gate --require"], "the example must gate with chaos gate --history --require")
		})
	}
}

// collectScripts gathers the shell lines of a CI file: the values of
// GitHub's run keys and the items of GitLab's script lists.
func collectScripts(node any, key string, out *[]string) {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			collectScripts(v, k, out)
		}
	case []any:
		for _, v := range n {
			collectScripts(v, key, out)
		}
	case string:
		switch key {
		case "run", "script", "before_script", "after_script":
			for l := range strings.Lines(n) {
				*out = append(*out, strings.TrimSpace(l))
			}
		}
	}
}

// shellWords splits a command line on spaces outside quotes; enough for
// the examples, which use no escapes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '\'' || r == '"'):
			quote, in = r, true
		case quote == 0 && r == ' ':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

func hasFlag(c *cli.Command, name string) bool {
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}
