package experiments

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// Secrets are written as ${env:NAME} inside a string value of a file (a
// header, a password, a URL, a request body, an exec probe's env, a webhook,
// a plugin parameter): the value comes from the environment chaos runs in,
// when the file is loaded. A variable that is not set is a problem at the
// reference's position. $${ is a literal ${.
//
// A value that holds a secret is a Secret, never a plain string: it prints
// (String, every fmt verb, JSON, text, slog) as the file wrote it with each
// reference shown as ***, and only Reveal gives the resolved text, which is
// called where a probe request or a plugin request is built and nowhere
// else. A field that is not a Secret refuses ${env:...}, so a secret cannot
// reach a message, a log or a report through a plain string.
//
// Redact is the second line: text that chaos did not write itself (a
// plugin's error, which may echo a parameter) is passed through it, and it
// finds each secret in the forms it is usually printed in.

// Redacted is what is shown in place of a secret.
const Redacted = "***"

// Secret is a string value of the file that may hold the values of
// ${env:NAME} references. The zero value is an empty string the file did
// not set.
type Secret struct {
	value   string // resolved: what a request is built from
	shown   string // as written, each reference replaced by Redacted
	written string // as written in the file, references and all
	secret  bool   // holds at least one reference
}

// Plain is a Secret that holds no secret: a value written in clear, or one
// a test or a program builds.
func Plain(s string) Secret { return Secret{value: s, shown: s, written: s} }

// Reveal is the resolved value. Call it only where a request is built
// (a probe's URL, headers and body, a plugin's parameters), never for
// something that is printed, logged or stored.
func (s Secret) Reveal() string { return s.value }

// HoldsSecret reports whether the value came, at least in part, from
// ${env:NAME}.
func (s Secret) HoldsSecret() bool { return s.secret }

// IsZero reports whether the file left the value unset or empty.
func (s Secret) IsZero() bool { return s.written == "" }

// Written is the value as the file wrote it, ${env:NAME} references and
// all: safe to print, and what a message about the value should show.
func (s Secret) Written() string { return s.written }

// String is the value with every secret shown as ***.
func (s Secret) String() string { return s.shown }

// Format prints the value with every secret shown as ***, whatever the
// verb: %q quotes that text, every other verb (%v, %+v, %#v, %s, %x...)
// prints it as it is, so no verb can be used to reach the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		_, _ = io.WriteString(f, strconv.Quote(s.shown))
	default:
		_, _ = io.WriteString(f, s.shown)
	}
}

// GoString implements fmt.GoStringer like Format does.
func (s Secret) GoString() string { return strconv.Quote(s.shown) }

// MarshalJSON writes the value with every secret shown as ***.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.shown) }

// MarshalText writes the value with every secret shown as ***.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.shown), nil }

// UnmarshalText makes a Secret of text that holds no secret: the strict
// decoder calls it for a value it does not expand (`version: 1`).
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Plain(string(b))
	return nil
}

// LogValue implements slog.LogValuer: a logged Secret shows *** too.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.shown) }

// RevealParams is a copy of a fault's `with` parameters with every Secret
// replaced by its resolved value, for the plugin's request. Nothing else may
// hold the copy.
func RevealParams(with map[string]any) map[string]any {
	if with == nil {
		return nil
	}
	out, _ := revealValue(with).(map[string]any)
	return out
}

func revealValue(v any) any {
	switch t := v.(type) {
	case Secret:
		return t.value
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = revealValue(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = revealValue(x)
		}
		return out
	}
	return v
}

// Redact replaces every occurrence of every secret in s with Redacted: the
// secret as it is, JSON-escaped, Go-quoted (%q, with or without non-ASCII
// escapes), YAML-quoted, escaped twice (an error quoted inside another),
// and any first part of 8 characters or more of those that a message cut
// short with "…" or "...". Longer forms are replaced first, so a secret
// that contains another is replaced whole. Empty secrets are ignored.
func Redact(s string, secrets []string) string {
	if len(secrets) == 0 || s == "" {
		return s
	}
	return NewRedactor(secrets).Redact(s)
}

// Redactor is Redact with its forms computed once, for a writer that
// redacts many lines.
type Redactor struct {
	forms []string
	r     *strings.Replacer
}

// minShortened is the shortest first part of a secret that is redacted
// when a message cut the secret short: shorter ones match too much
// ordinary text to be worth hiding.
const minShortened = 8

// NewRedactor computes the forms of secrets that Redact looks for.
func NewRedactor(secrets []string) *Redactor {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	for _, x := range secrets {
		if x == "" {
			continue
		}
		escaped := escapedForms(x)
		for _, e := range escaped {
			add(e)
			for _, e2 := range escapedForms(e)[1:] {
				add(e2)
			}
		}
		for _, e := range escaped {
			for n := minShortened; n < len(e); n++ {
				if !utf8.RuneStart(e[n]) {
					continue
				}
				add(e[:n] + "…")
				add(e[:n] + "...")
			}
		}
	}
	if len(forms) == 0 {
		return &Redactor{}
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, Redacted)
	}
	return &Redactor{forms: forms, r: strings.NewReplacer(pairs...)}
}

// Redact replaces every form of every secret in s.
func (r *Redactor) Redact(s string) string {
	if r == nil || r.r == nil || s == "" {
		return s
	}
	return r.r.Replace(s)
}

// escapedForms are x and the ways it is written inside quotes: JSON (with
// and without HTML escapes), Go (%q and %+q), YAML double- and
// single-quoted. The first is always x itself.
func escapedForms(x string) []string {
	forms := []string{x}
	inner := func(q string) string {
		if len(q) >= 2 {
			return q[1 : len(q)-1]
		}
		return q
	}
	if b, err := json.Marshal(x); err == nil {
		forms = append(forms, inner(string(b)))
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(x) == nil {
		forms = append(forms, inner(strings.TrimSuffix(buf.String(), "\n")))
	}
	forms = append(forms, inner(strconv.Quote(x)), inner(strconv.QuoteToASCII(x)))
	if b, err := yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: x}); err == nil {
		forms = append(forms, inner(strings.TrimSuffix(string(b), "\n")))
	}
	forms = append(forms, strings.ReplaceAll(x, "'", "''"))
	return forms
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

// expand is a decodeOptions.expand hook. The result holds the resolved text, and the text with each reference
// shown as Redacted, so that it can be printed.
func (x *envExpander) expand(s string, n *yaml.Node, path string, probs *[]Problem) Secret {
	if !strings.Contains(s, "${") {
		return Plain(s)
	}
	var b, shown strings.Builder
	both := func(t string) { b.WriteString(t); shown.WriteString(t) }
	secret := false
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			both(rest)
			break
		}
		if i > 0 && rest[i-1] == '$' {
			// $${ is an escaped ${.
			both(rest[:i-1])
			both("${")
			rest = rest[i+2:]
			continue
		}
		both(rest[:i])
		offset := len(s) - len(rest) + i
		if !strings.HasPrefix(rest[i:], envRefOpen) {
			// Not ours (a template in a request body, say): kept as it is.
			both("${")
			rest = rest[i+2:]
			continue
		}
		// From here on the value is meant to hold a secret, resolved or
		// not: nothing may print it but as ***.
		secret = true
		after := rest[i+len(envRefOpen):]
		end := strings.IndexByte(after, '}')
		if end < 0 {
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: "${env: has no closing }", Hint: "write ${env:NAME}, or $${ for a literal ${"})
			return Secret{value: s, shown: Redacted, written: s, secret: true}
		}
		shown.WriteString(Redacted)
		name := after[:end]
		rest = after[end+1:]
		if !isEnvName(name) {
			x.failed[path] = true
			*probs = append(*probs, Problem{Pos: refPos(n, s, offset), Path: path,
				Message: fmt.Sprintf("%q is not an environment variable name", strictyaml.Shorten(name)),
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
	return Secret{value: b.String(), shown: shown.String(), written: s, secret: secret}
}

// refPos is the position of the byte at offset in the scalar n, when n is
// written on one line; otherwise the scalar's own position.
func refPos(n *yaml.Node, s string, offset int) Pos {
	p := strictyaml.PosOf(n)
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

// quoteValue is how a message shows a value it complains about: quoted and
// cut to 40 characters when it is plain text, and as the file wrote it
// (${env:NAME}, never quoted, never cut) when it holds a secret, so that
// neither an escape nor a cut can leak a piece of the secret.
func quoteValue(v Secret) string {
	if v.HoldsSecret() {
		return v.Written() + " (read from the environment; its value is not shown)"
	}
	return strconv.Quote(strictyaml.Shorten(v.Reveal()))
}
