package experiments

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Secrets are written as ${env:NAME} inside any string value of a file (a
// header, a password, a URL, a plugin parameter): the value comes from the
// environment chaos runs in, when the file is loaded. A variable that is not
// set is a problem at the reference's position. $${ is a literal ${.
//
// The resolved values are recorded as the experiment's secrets; nothing that
// prints (validate's messages, logs, reports) may show them, so everything
// that prints text derived from the file passes it through Redact.

// Redacted replaces a secret in output.
const Redacted = "[redacted]"

// Redact replaces every occurrence of every secret in s with Redacted. Longer
// secrets are replaced first, so a secret that contains another is replaced
// whole. Empty secrets are ignored.
func Redact(s string, secrets []string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	sorted := make([]string, 0, len(secrets))
	for _, x := range secrets {
		if x != "" && strings.Contains(s, x) {
			sorted = append(sorted, x)
		}
	}
	if len(sorted) == 0 {
		return s
	}
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	pairs := make([]string, 0, 2*len(sorted))
	for _, x := range sorted {
		pairs = append(pairs, x, Redacted)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// envExpander resolves ${env:NAME} references while a file is decoded.
type envExpander struct {
	lookup  func(string) (string, bool)
	secrets []string
	seen    map[string]bool
	// failed are the paths of values whose references could not be
	// resolved: what validation says about those values is noise.
	failed map[string]bool
	// note, when set, takes an unset or empty variable as a note rather
	// than a problem (Options.AllowUnsetSecrets).
	note func(Problem)
}

const envRefOpen = "${env:"

// expand is a decodeOptions.expand hook.
func (x *envExpander) expand(s string, n *yaml.Node, path string, probs *[]Problem) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			break
		}
		if i > 0 && rest[i-1] == '$' {
			// $${ is an escaped ${.
			b.WriteString(rest[:i-1])
			b.WriteString("${")
			rest = rest[i+2:]
			continue
		}
		b.WriteString(rest[:i])
		offset := len(s) - len(rest) + i
		if !strings.HasPrefix(rest[i:], envRefOpen) {
			// Not ours (a template in a request body, say): kept as it is.
			b.WriteString("${")
			rest = rest[i+2:]
			continue
		}
		after := rest[i+len(envRefOpen):]
		end := strings.IndexByte(after, '}')
		if end < 0 {
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: "${env: has no closing }", Hint: "write ${env:NAME}, or $${ for a literal ${"})
			return s
		}
		name := after[:end]
		rest = after[end+1:]
		if !isEnvName(name) {
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: fmt.Sprintf("%q is not an environment variable name", yamlShorten(name)),
				Hint:    "letters, digits and _, not starting with a digit, e.g. ${env:API_TOKEN}"})
			continue
		}
		v, ok := x.lookup(name)
		if x.note != nil && v == "" {
			state := "not set"
			if ok {
				state = "empty"
			}
			x.failed[path] = true
			x.note(Problem{Pos: refPos(n, s, offset), Path: path,
				Message: fmt.Sprintf("environment variable %s is %s; its value is not checked offline", name, state),
				Hint:    "a run reads it when the file is loaded and refuses the file without it"})
			continue
		}
		if !ok {
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: fmt.Sprintf("environment variable %s is not set", name),
				Hint:    fmt.Sprintf("set %s in the environment chaos runs in; ${env:...} is read when the file is loaded", name)})
			continue
		}
		if v == "" {
			// An unset CI secret usually arrives as an empty variable; an
			// empty token would only fail later, as a failed probe.
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: fmt.Sprintf("environment variable %s is empty", name),
				Hint:    "set it to the secret's value; a CI secret that is not configured arrives empty"})
			continue
		}
		if !x.seen[v] {
			x.seen[v] = true
			x.secrets = append(x.secrets, v)
		}
		b.WriteString(v)
	}
	return b.String()
}

// refPos is the position of the byte at offset in the scalar n, when n is
// written on one line; otherwise the scalar's own position.
func refPos(n *yaml.Node, s string, offset int) Pos {
	p := yamlPosOf(n)
	if strings.ContainsRune(s, '\n') || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return p
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		p.Col++
	}
	p.Col += utf8.RuneCountInString(s[:offset])
	return p
}

func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
