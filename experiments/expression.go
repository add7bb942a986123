package experiments

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Observation is what one probe saw once. Expressions read its fields as
// probe.field; the engine records Values in the report.
type Observation interface {
	// Succeeded is false when the probe could not observe at all (timeout,
	// refused connection, unparsable answer). Such an observation never
	// lets an expression that reads it hold.
	Succeeded() bool
	// Failure says why the probe could not observe; empty on success.
	Failure() string
	// Values are the fields, for the record.
	Values() map[string]any
}

// HTTPObservation is what an http probe sees.
type HTTPObservation struct {
	OK      bool          `expr:"ok"`
	Error   string        `expr:"error"`
	Status  int           `expr:"status"`
	Latency time.Duration `expr:"latency"`
	Body    string        `expr:"body"`
}

// Succeeded implements Observation.
func (o HTTPObservation) Succeeded() bool { return o.OK }

// Failure implements Observation.
func (o HTTPObservation) Failure() string { return o.Error }

// Values implements Observation. The body is left out: it may be large and
// may carry data the owners would not want in a report.
func (o HTTPObservation) Values() map[string]any {
	v := map[string]any{"ok": o.OK, "status": o.Status, "latency": o.Latency.Round(time.Microsecond).String()}
	if o.Error != "" {
		v["error"] = o.Error
	}
	return v
}

// zeroObservation returns the observation type of a probe, so expressions
// can be type-checked against it before anything runs.
func zeroObservation(p *Probe) Observation {
	switch {
	case p.HTTP != nil:
		return HTTPObservation{}
	default:
		return nil
	}
}

// Expression is a steady-state or budget expression: its source as written,
// where it stands in the file, and, once validated, its compiled program.
type Expression struct {
	Source string
	Pos    Pos
	// colOffset is added to a column inside a one-line expression to get the
	// column in the file (1 for a quoted scalar, 0 for a plain one).
	colOffset int
	program   *vm.Program
	// probes are the probes the expression reads, sorted.
	probes []string
}

// DecodeNode implements NodeDecoder: an expression is a string scalar.
func (e *Expression) DecodeNode(node *yaml.Node, path string, probs *[]Problem) {
	e.Pos = Pos{Line: node.Line, Col: node.Column}
	if node.Kind != yaml.ScalarNode {
		*probs = append(*probs, Problem{Pos: e.Pos, Path: path, Message: "expected an expression (a string), got " + kindName(node)})
		return
	}
	e.Source = node.Value
	if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		e.colOffset = 1
	}
}

// Probes are the names of the probes the expression reads.
func (e *Expression) Probes() []string { return e.probes }

// Program is the compiled expression; nil before Load succeeds.
func (e *Expression) Program() *vm.Program { return e.program }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return "a scalar"
	}
}

// Env is the environment expressions are compiled and run against: one
// entry per probe, holding its latest observation.
type Env map[string]any

// compileEnv builds the typed environment for type-checking.
func compileEnv(probes map[string]*Probe) Env {
	env := Env{}
	for name, p := range probes {
		if o := zeroObservation(p); o != nil {
			env[name] = o
		}
	}
	return env
}

// compile compiles e against env and records the probes it reads. A problem
// points at the place inside the expression where the compiler stopped.
func (e *Expression) compile(env Env, path string) *Problem {
	if strings.TrimSpace(e.Source) == "" {
		return &Problem{Pos: e.Pos, Path: path, Message: "expression is empty"}
	}
	prog, err := expr.Compile(e.Source, expr.Env(map[string]any(env)), expr.AsBool())
	if err != nil {
		p := &Problem{Pos: e.Pos, Path: path, Message: err.Error()}
		var fe *file.Error
		if errors.As(err, &fe) {
			p.Message = fe.Message
			if fe.Line <= 1 {
				p.Pos.Col = e.Pos.Col + e.colOffset + fe.Column
			} else {
				p.Pos.Line = e.Pos.Line + fe.Line - 1
				p.Pos.Col = fe.Column + 1
			}
			p.Hint = hintForExpr(fe.Message, env)
		}
		return p
	}
	e.program = prog
	e.probes = identifiers(prog.Node(), env)
	return nil
}

// hintForExpr suggests a probe name when the compiler met an unknown one.
func hintForExpr(msg string, env Env) string {
	name, ok := strings.CutPrefix(msg, "unknown name ")
	if !ok {
		return ""
	}
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no probes are declared under spec.probes"
	}
	return didYouMean(name, names, "probes declared: "+strings.Join(names, ", "))
}

// identifiers lists the env names an expression reads, sorted and unique.
func identifiers(node ast.Node, env Env) []string {
	v := &identVisitor{env: env, seen: map[string]bool{}}
	ast.Walk(&node, v)
	sort.Strings(v.names)
	return v.names
}

type identVisitor struct {
	env   Env
	seen  map[string]bool
	names []string
}

func (v *identVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	if _, known := v.env[id.Value]; known && !v.seen[id.Value] {
		v.seen[id.Value] = true
		v.names = append(v.names, id.Value)
	}
}
