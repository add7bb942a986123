package experiments

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// Errors of this package.
var (
	// ErrInvalid is what every *FileError is: the file cannot be run as it is.
	ErrInvalid = errors.New("invalid experiment")
	// ErrNotCompiled means an expression was evaluated before Load compiled it.
	ErrNotCompiled = errors.New("expression is not compiled")
	// ErrNoObservation means an expression reads a probe that has not
	// observed anything yet.
	ErrNoObservation = errors.New("no observation yet")
	// ErrNoHistory means a history function has no observation in its window.
	ErrNoHistory = errors.New("no observation in the window")
	// ErrFieldNotObserved means an expression read a field the latest
	// observation does not have: the value of an empty Prometheus result,
	// or anything but ok, error and the time waited of an observation that
	// could not be made. Such an expression does not hold.
	ErrFieldNotObserved = errors.New("field not observed")
)

// FileError lists every problem found in one file.
type FileError struct {
	File     string
	Problems []Problem
}

// Error prints one problem per line as file:line:col: message (hint).
func (e *FileError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Format(p))
	}
	return b.String()
}

// Format prints one problem as file:line:col: message (hint).
func (e *FileError) Format(p Problem) string {
	s := fmt.Sprintf("%s:%d:%d: %s", e.File, p.Pos.Line, p.Pos.Col, p.Message)
	if p.Hint != "" {
		s += " (" + p.Hint + ")"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FileError) Unwrap() error { return ErrInvalid }

// Options tune loading. The zero value checks everything that can be
// checked without knowing which plugins exist, and reads ${env:NAME} from
// the process environment.
type Options struct {
	// Plugins are the names of the fault plugins that exist. When set, a
	// fault naming another plugin is a problem.
	Plugins []string
	// LookupEnv resolves ${env:NAME} references; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// MinProbeEvery lowers (or raises) the floor under a probe's every;
	// zero means MinProbeEvery. Only programs set it (benchmarks that
	// measure detection at probe speeds no file may ask for); the CLI
	// never does.
	MinProbeEvery time.Duration
	// AllowUnsetSecrets makes an unset or empty ${env:NAME} a note rather
	// than a problem, and the reference reads as empty: `chaos validate
	// --offline` checks files where the secrets are not (a pipeline linting
	// a pull request). A run never sets it.
	AllowUnsetSecrets bool
	// Notes receives what is worth saying about a file without being a
	// problem in it (an unset secret under AllowUnsetSecrets); nil drops it.
	Notes func(Problem)
}

// Load reads and checks one experiment file.
func Load(path string, opts Options) (*Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read experiment: %w", err)
	}
	return Parse(path, data, opts)
}

// yamlLine finds the line number in a yaml.v3 syntax error message.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse checks one experiment file's contents. It returns a *FileError with
// every problem it found, or a validated experiment whose expressions are
// compiled and whose ${env:NAME} references are resolved. Messages never
// contain a resolved secret.
func Parse(file string, data []byte, opts Options) (*Experiment, error) {
	var doc yaml.Node
	docs := yaml.NewDecoder(bytes.NewReader(data))
	if err := docs.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, &FileError{File: file, Problems: []Problem{yamlSyntaxProblem(err)}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FileError{File: file, Problems: []Problem{{Pos: Pos{Line: 1, Col: 1}, Message: "file is empty", Hint: "an experiment starts with apiVersion: chaos/v1 and kind: Experiment"}}}
	}
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := &envExpander{lookup: lookup, seen: map[string]bool{}, failed: map[string]bool{}}
	if opts.AllowUnsetSecrets {
		env.note = opts.Notes
		if env.note == nil {
			env.note = func(Problem) {}
		}
	}
	exp := Experiment{positions: map[string]FieldPos{}}
	var probs []Problem
	strictyaml.DecodeWith(&doc, &exp, &probs, strictyaml.Options{
		Index: exp.positions,
		Expand: func(s string, n *yaml.Node, path string, probs *[]Problem) strictyaml.Text {
			return env.expand(s, n, path, probs)
		},
	})
	exp.File = file
	exp.secrets = env.secrets
	decoded := len(probs)
	validate(&exp, opts, &probs)
	if p, ok := nextDocument(docs, data); ok {
		probs = append(probs, p)
	}
	if len(env.failed) > 0 {
		// A value whose ${env:...} could not be resolved is reported once,
		// for that; what validation then says about it (empty, not a URL)
		// is a consequence, not another mistake.
		kept := probs[:decoded]
		for _, p := range probs[decoded:] {
			if !env.failed[p.Path] {
				kept = append(kept, p)
			}
		}
		probs = kept
	}
	if len(probs) > 0 {
		for i := range probs {
			probs[i].Message = Redact(probs[i].Message, exp.secrets)
			probs[i].Hint = Redact(probs[i].Hint, exp.secrets)
		}
		SortProblems(probs)
		return nil, &FileError{File: file, Problems: probs}
	}
	return &exp, nil
}

// nextDocument reports a second YAML document in the file, if there is
// one: one file is one experiment, and a document after the first would
// otherwise be silently ignored, however broken. Empty documents (a
// trailing ---) are harmless and allowed.
func nextDocument(docs *yaml.Decoder, data []byte) (Problem, bool) {
	const hint = "put each experiment in a file of its own; chaos validate takes many files"
	for {
		var next yaml.Node
		err := docs.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return Problem{}, false
		case err != nil:
			// The second document does not even parse; point at the ---
			// that starts it, before the line yaml complains about.
			line := yamlSyntaxProblem(err).Pos.Line
			return Problem{Pos: Pos{Line: separatorBefore(data, line), Col: 1}, Path: "---",
				Message: "a second YAML document starts here (and does not parse); chaos reads one experiment per file", Hint: hint}, true
		case len(next.Content) == 0,
			len(next.Content) == 1 && next.Content[0].Kind == yaml.ScalarNode && next.Content[0].Tag == "!!null" && next.Content[0].Value == "":
			continue
		}
		return Problem{Pos: Pos{Line: next.Line, Col: next.Column}, Path: "---",
			Message: "a second YAML document starts here; chaos reads one experiment per file", Hint: hint}, true
	}
}

// separatorBefore is the line of the last document separator (---) at or
// before line; line itself if there is none.
func separatorBefore(data []byte, line int) int {
	found := line
	for i, l := range strings.Split(string(data), "\n") {
		if i+1 > line {
			break
		}
		if l == "---" || strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "---\t") || strings.HasPrefix(l, "---\r") {
			found = i + 1
		}
	}
	return found
}

// SortProblems puts problems in file order, keeping the order of those at
// one position.
func SortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool {
		if probs[i].Pos.Line != probs[j].Pos.Line {
			return probs[i].Pos.Line < probs[j].Pos.Line
		}
		return probs[i].Pos.Col < probs[j].Pos.Col
	})
}

// yamlSyntaxProblem turns a yaml.v3 error into a problem with a line.
func yamlSyntaxProblem(err error) Problem {
	msg := err.Error()
	p := Problem{Pos: Pos{Line: 1, Col: 1}, Message: strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Pos.Line, _ = strconv.Atoi(m[1])
		p.Message = m[2]
		if strings.HasPrefix(p.Message, "did not find expected ',' or") || strings.HasPrefix(p.Message, "did not find expected '-'") {
			// For these yaml.v3 names the line of the unclosed { or [, or
			// of the list, counted from 0.
			p.Pos.Line++
		}
	}
	if strings.Contains(msg, "found character that cannot start any token") || strings.Contains(msg, "found a tab character") {
		p.Hint = "indent with spaces; YAML does not allow tabs"
	}
	return p
}
