package experiments

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is what every *FileError is: the file cannot be run as it is.
var ErrInvalid = errors.New("invalid experiment")

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
// checked without knowing which plugins exist.
type Options struct {
	// Plugins are the names of the fault plugins that exist. When set, a
	// fault naming another plugin is a problem.
	Plugins []string
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
// compiled.
func Parse(file string, data []byte, opts Options) (*Experiment, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p := Problem{Pos: Pos{Line: 1, Col: 1}, Message: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			p.Pos.Line, _ = strconv.Atoi(m[1])
			p.Message = m[2]
		}
		return nil, &FileError{File: file, Problems: []Problem{p}}
	}
	if doc.Kind == 0 {
		return nil, &FileError{File: file, Problems: []Problem{{Pos: Pos{Line: 1, Col: 1}, Message: "file is empty"}}}
	}
	var exp Experiment
	var probs []Problem
	Decode(&doc, &exp, &probs)
	exp.File = file
	validate(&exp, opts, &probs)
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool {
			if probs[i].Pos.Line != probs[j].Pos.Line {
				return probs[i].Pos.Line < probs[j].Pos.Line
			}
			return probs[i].Pos.Col < probs[j].Pos.Col
		})
		return nil, &FileError{File: file, Problems: probs}
	}
	return &exp, nil
}
