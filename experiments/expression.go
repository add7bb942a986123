package experiments

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// Expressions are expr-lang programs compiled once, at validation, against
// a typed environment: each probe's name is bound to the observation type of
// its kind (HTTPObservation for an http probe, and so on), so a typo in a
// probe or field name, a string compared with a number, or a duration
// compared with a plain number is a problem with its position before
// anything runs.
//
// Three functions read the probe history (History) rather than the latest
// observation:
//
//	failureRatio("checkout", "30s")            share of failures in the window (float)
//	consecutiveFailures("checkout")            failures in a row, latest first (int)
//	percentile(checkout.latency, 99, "30s")    nearest-rank percentile of a field
//
// The probe is a name (quoted or not), the window a quoted duration, and the
// percentile's field is written as probe.field (or quoted, "checkout.latency");
// all must be literals, and are checked at validation: the probe must be
// declared, the window a duration no shorter than the probe's interval, the
// field a number or a duration (the percentile of a duration is a duration).

// The history functions.
const (
	fnFailureRatio        = "failureRatio"
	fnConsecutiveFailures = "consecutiveFailures"
	fnPercentile          = "percentile"
	// fnPercentileDuration is what percentile of a duration field becomes
	// at compile time, so that its result compares with duration("300ms").
	fnPercentileDuration = "percentileDuration"
)

// exprReserved are names a probe may not have: expr's keywords, our history
// functions, and duration(), which every latency expression needs. A probe
// may have the name of another built-in function (count, first, type): it
// then hides that function in the file's expressions, and expr says so.
func exprReserved(name string) bool {
	switch name {
	case "true", "false", "nil", "in", "not", "and", "or", "matches", "contains",
		"startsWith", "endsWith", "let", "if", "else", "env", "$env", "duration",
		fnFailureRatio, fnConsecutiveFailures, fnPercentile, fnPercentileDuration:
		return true
	}
	return false
}

// isIdentifier reports whether name can be read in an expression as it is.
func isIdentifier(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Expression is a steady-state or budget expression: its source as written,
// where it stands in the file, and, once validated, its compiled program.
type Expression struct {
	Source string
	Pos    Pos
	// colOffset is added to a column inside a one-line expression to get the
	// column in the file (1 for a quoted scalar, 0 for a plain one).
	colOffset int
	style     yaml.Style
	program   *vm.Program
	// probes are the probes the expression reads directly, sorted, and
	// types their observation types.
	probes []string
	types  map[string]reflect.Type
	// history are the probes it reads through history functions, sorted;
	// windows the durations those functions were given, by literal; window
	// the longest.
	history []string
	windows map[string]time.Duration
	window  time.Duration
	// observed are the checking functions of the fields it reads that an
	// observation may lack (see observed.go), by name.
	observed map[string]any
}

// DecodeNode implements NodeDecoder: an expression is a string scalar.
func (e *Expression) DecodeNode(node *yaml.Node, path string, probs *[]Problem) {
	e.Pos = Pos{Line: node.Line, Col: node.Column}
	if node.Kind != yaml.ScalarNode {
		*probs = append(*probs, Problem{Pos: e.Pos, Path: path, Message: "expected an expression (a string), got " + kindName(node)})
		return
	}
	if node.ShortTag() == "!!null" {
		return
	}
	e.Source = node.Value
	e.style = node.Style
	if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		e.colOffset = 1
	}
}

// Probes are the names of the probes the expression reads directly (their
// latest observation), sorted.
func (e *Expression) Probes() []string { return e.probes }

// HistoryProbes are the names of the probes the expression reads through
// history functions, sorted.
func (e *Expression) HistoryProbes() []string { return e.history }

// Window is the longest window the expression's history functions read;
// zero when it reads no history.
func (e *Expression) Window() time.Duration { return e.window }

// Program is the compiled expression; nil before Load succeeds. It expects
// an environment of the latest observation of each of Probes and of the
// functions of Functions; an expression that reads history needs Eval,
// which binds the history functions.
func (e *Expression) Program() *vm.Program { return e.program }

// Functions are the functions, by name, that Program calls to read fields
// an observation may lack (see observed.go). Eval binds them.
func (e *Expression) Functions() map[string]any { return maps.Clone(e.observed) }

// Eval evaluates the expression against the latest observation of each
// probe it reads and, for the history functions, against h at time now (a
// nil h is an empty history). It returns ErrNoObservation when a probe it
// reads has not observed yet, and ErrNoHistory (wrapped) when a history
// function has nothing in its window: neither is a verdict, and the caller
// decides what waiting means. An observation that is not a success is
// evaluated like any other; whether that may let a steady state hold is the
// caller's policy (the engine's is: never).
func (e *Expression) Eval(latest map[string]Observation, h *History, now time.Time) (bool, error) {
	if e.program == nil {
		return false, ErrNotCompiled
	}
	env := make(map[string]any, len(e.probes)+4)
	for _, name := range e.probes {
		o, ok := latest[name]
		if !ok || o == nil {
			return false, fmt.Errorf("probe %s: %w", name, ErrNoObservation)
		}
		if want := e.types[name]; want != nil && reflect.TypeOf(o) != want {
			return false, fmt.Errorf("probe %s observed a %T, but the expression was compiled for a %s", name, o, want)
		}
		env[name] = o
	}
	maps.Copy(env, e.observed)
	if len(e.history) > 0 {
		if h == nil {
			h = NewHistory(0)
		}
		bindHistory(env, h, e.windows, now)
	}
	// A VM of its own per evaluation: the memory budget bounds what one
	// evaluation may allocate (ranges, arrays, iteration scopes), so an
	// expression that turns expensive on what a probe observed fails
	// instead of growing the runner without limit.
	machine := vm.VM{MemoryBudget: EvalMemoryBudget}
	out, err := machine.Run(e.program, env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) && fe.Message == exprMemoryBudgetMessage {
			return false, fmt.Errorf("%w (%d units): %w", ErrMemoryBudget, EvalMemoryBudget, err)
		}
		return false, err
	}
	held, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %T, not a bool", out)
	}
	return held, nil
}

// EvalMemoryBudget is the memory budget of one evaluation, in expr's units
// (about one per element of a range, an array or an iteration scope). A
// check the engine makes on every observation has no use for more; the
// runner must stay small while faults are live.
const EvalMemoryBudget uint = 1_000_000

// ErrMemoryBudget means an evaluation went past EvalMemoryBudget. It is not
// a verdict about the service: the expression cannot be judged.
var ErrMemoryBudget = errors.New("expression exceeded its memory budget")

// exprMemoryBudgetMessage is how expr's VM says the budget ran out; it
// panics with this text, which the VM turns into a *file.Error.
const exprMemoryBudgetMessage = "memory budget exceeded"

// bindHistory puts the history functions, reading h at now, into env.
func bindHistory(env map[string]any, h *History, windows map[string]time.Duration, now time.Time) {
	window := func(w string) time.Duration { return windows[w] }
	env[fnFailureRatio] = func(probe, w string) (float64, error) {
		return h.FailureRatio(probe, window(w), now)
	}
	env[fnConsecutiveFailures] = func(probe string) int {
		return h.ConsecutiveFailures(probe)
	}
	env[fnPercentile] = func(field string, p float64, w string) (float64, error) {
		probe, name, _ := strings.Cut(field, ".")
		return h.Percentile(probe, name, p, window(w), now)
	}
	env[fnPercentileDuration] = func(field string, p float64, w string) (time.Duration, error) {
		probe, name, _ := strings.Cut(field, ".")
		v, err := h.Percentile(probe, name, p, window(w), now)
		return time.Duration(v), err
	}
}

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

// exprEnv is what expressions of one file are compiled against.
type exprEnv struct {
	probes map[string]*Probe
	// names are the declared probe names that have a kind, sorted.
	names []string
	env   map[string]any
	// unreadable are declared probe names expressions cannot read.
	unreadable []string
}

// compileEnv builds the typed environment for type-checking: each probe's
// zero observation, and the history functions with their types.
func compileEnv(probes map[string]*Probe) *exprEnv {
	x := &exprEnv{probes: map[string]*Probe{}, env: map[string]any{}}
	for name, p := range probes {
		switch {
		case !isIdentifier(name) || exprReserved(name):
			x.unreadable = append(x.unreadable, name)
		case p == nil || zeroObservation(p) == nil:
			// Declared, but its kind is missing or wrong, which is said
			// where the probe is: expressions may read anything of it.
			x.env[name] = map[string]any{}
		default:
			x.env[name] = zeroObservation(p)
			x.probes[name] = p
			x.names = append(x.names, name)
			bindObserved(x.env, p.Kind(), reflect.TypeOf(x.env[name]))
		}
	}
	sort.Strings(x.unreadable)
	sort.Strings(x.names)
	// Stubs: only their types matter here; Eval binds the real ones.
	x.env[fnFailureRatio] = func(string, string) (float64, error) { return 0, nil }
	x.env[fnConsecutiveFailures] = func(string) int { return 0 }
	x.env[fnPercentile] = func(string, float64, string) (float64, error) { return 0, nil }
	x.env[fnPercentileDuration] = func(string, float64, string) (time.Duration, error) { return 0, nil }
	return x
}

// exprProblem is a problem at a rune offset of an expression's source.
type exprProblem struct {
	from          int
	message, hint string
}

// compile compiles e against env and records what it reads. Each problem
// points at the place inside the expression it is about.
func (e *Expression) compile(env *exprEnv, path string) []Problem {
	if strings.TrimSpace(e.Source) == "" {
		return []Problem{{Pos: e.Pos, Path: path, Message: "expression is empty", Hint: "e.g. checkout.status == 200"}}
	}
	// An expression that could run for ever is refused before expr even
	// type-checks it (see expression_cost.go).
	if cost := e.costProblems(); len(cost) > 0 {
		return e.positioned(cost, path)
	}
	hp := &historyPatcher{env: env, windows: map[string]time.Duration{}, history: map[string]bool{}, src: e.Source}
	op := &observedPatcher{env: env, funcs: map[string]any{}}
	prog, err := expr.Compile(e.Source, expr.Env(env.env), expr.AsBool(), expr.Patch(hp), expr.Patch(op), expr.MaxNodes(MaxExprNodes))
	var probs []Problem
	for _, p := range hp.problems {
		line, col := e.offsetToLineCol(p.from)
		probs = append(probs, Problem{Pos: e.filePos(line, col), Path: path, Message: p.message, Hint: p.hint})
	}
	if err != nil && len(probs) == 0 {
		// With the patcher's problems, expr's error is usually their
		// consequence (a string where a number was), so it is left out.
		p := Problem{Pos: e.Pos, Path: path, Message: err.Error()}
		fe := &file.Error{Message: err.Error()}
		if errors.As(err, &fe) {
			p.Message = friendlyExprMessage(fe.Message)
			p.Pos = e.filePos(fe.Line, fe.Column)
		}
		p.Hint = e.hintForExpr(fe, env)
		if !e.readsUnreadable(env) {
			probs = append(probs, p)
		}
	}
	if err != nil || len(probs) > 0 {
		return probs
	}
	if kp := e.kindFieldProblems(env); len(kp) > 0 {
		return e.positioned(kp, path)
	}
	e.program = prog
	e.probes = identifiers(prog.Node(), env)
	e.types = make(map[string]reflect.Type, len(e.probes))
	for _, name := range e.probes {
		e.types[name] = reflect.TypeOf(env.env[name])
	}
	for name := range hp.history {
		e.history = append(e.history, name)
	}
	sort.Strings(e.history)
	e.windows = hp.windows
	e.observed = op.funcs
	for _, w := range hp.windows {
		e.window = max(e.window, w)
	}
	return nil
}

// readsUnreadable reports whether the expression reads a field of a probe
// whose name expressions cannot use (duration.status): that is reported at
// the probe, and what expr makes of it only confuses.
func (e *Expression) readsUnreadable(env *exprEnv) bool {
	if len(env.unreadable) == 0 {
		return false
	}
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return false
	}
	found := false
	ast.Walk(&tree.Node, visitorFunc(func(n *ast.Node) {
		if m, ok := (*n).(*ast.MemberNode); ok {
			if id, ok := m.Node.(*ast.IdentifierNode); ok && slices.Contains(env.unreadable, id.Value) {
				found = true
			}
		}
	}))
	return found
}

// offsetToLineCol turns a rune offset in the source into a 1-based line and
// a 0-based column, as expr's own errors give them.
func (e *Expression) offsetToLineCol(from int) (int, int) {
	line, col, i := 1, 0, 0
	for _, r := range e.Source {
		if i == from {
			break
		}
		if r == '\n' {
			line++
			col = 0
		} else {
			col++
		}
		i++
	}
	return line, col
}

// filePos maps a line (1-based) and column (0-based) inside the expression
// to the file. It is exact for expressions on one line, plain or quoted
// without escapes; for block scalars it points at the line and assumes the
// content is indented like the indicator.
func (e *Expression) filePos(line, col int) Pos {
	p := e.Pos
	switch {
	case e.style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		p.Line += max(line, 1)
		p.Col += col
		if e.style&yaml.FoldedStyle != 0 {
			p.Col = e.Pos.Col
		}
	case line <= 1:
		p.Col += e.colOffset + col
	default:
		p.Line += line - 1
		p.Col = col + 1
	}
	return p
}

// friendlyExprMessage names observation types as people know them.
func friendlyExprMessage(msg string) string {
	for _, k := range []struct{ goName, name string }{
		{"experiments.HTTPObservation", "an http observation"},
		{"experiments.TCPObservation", "a tcp observation"},
		{"experiments.PrometheusObservation", "a prometheus observation"},
		{"experiments.PrometheusSample", "a prometheus sample"},
		{"experiments.KubernetesObservation", "a kubernetes observation"},
		{"experiments.ExecObservation", "an exec observation"},
	} {
		msg = strings.ReplaceAll(msg, "type "+k.goName, k.name)
		msg = strings.ReplaceAll(msg, k.goName, k.name)
	}
	return msg
}

// hintForExpr helps with the mistakes expr reports most: a probe name that
// is not declared, a field an observation does not have, and a duration
// compared with a plain number.
func (e *Expression) hintForExpr(fe *file.Error, env *exprEnv) string {
	msg := fe.Message
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		for _, declared := range env.unreadable {
			if strings.HasPrefix(declared, name) {
				return fmt.Sprintf("probe %q cannot be read in an expression: rename it, e.g. %s", declared, strings.NewReplacer("-", "_", ".", "_", " ", "_").Replace(declared))
			}
		}
		if len(env.names) == 0 {
			return "no probes are declared under spec.probes"
		}
		return strictyaml.DidYouMean(name, env.names, "probes declared: "+strings.Join(env.names, ", "))
	}
	if strings.Contains(msg, " has no field ") {
		field := msg[strings.LastIndex(msg, " ")+1:]
		for _, t := range []reflect.Type{
			reflect.TypeOf(HTTPObservation{}), reflect.TypeOf(TCPObservation{}), reflect.TypeOf(PrometheusObservation{}),
			reflect.TypeOf(PrometheusSample{}), reflect.TypeOf(KubernetesObservation{}), reflect.TypeOf(ExecObservation{}),
		} {
			if strings.Contains(msg, t.String()+" ") {
				fields := observationFields(t)
				return strictyaml.DidYouMean(field, fields, "fields: "+strings.Join(fields, ", "))
			}
		}
	}
	if strings.HasPrefix(msg, "expected bool, but got ") {
		return "an expression must be true or false, e.g. checkout.status == 200"
	}
	if strings.Contains(msg, "mismatched types int and string") || strings.Contains(msg, "mismatched types float64 and string") {
		return "numbers are written without quotes, e.g. checkout.status == 200"
	}
	if strings.HasSuffix(msg, " is not callable") {
		return "a probe named like a built-in function hides the function in expressions; rename the probe"
	}
	if strings.HasPrefix(msg, "unexpected token EOF") {
		return "the expression ends too early: is something missing after the last operator?"
	}
	if strings.Contains(msg, "mismatched types time.Duration and ") || strings.Contains(msg, " and time.Duration)") {
		if n := e.numberNear(fe); n != "" {
			return fmt.Sprintf("a duration compares with a duration: use duration(%q)", n+"ms")
		}
		return `a duration compares with a duration, e.g. duration("300ms")`
	}
	return ""
}

// numberNear finds the number literal on either side of the binary
// operator at fe's position, if there is one.
func (e *Expression) numberNear(fe *file.Error) string {
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return ""
	}
	var found string
	ast.Walk(&tree.Node, visitorFunc(func(n *ast.Node) {
		b, ok := (*n).(*ast.BinaryNode)
		if !ok || b.Location().From != fe.From || found != "" {
			return
		}
		for _, side := range []ast.Node{b.Left, b.Right} {
			switch v := side.(type) {
			case *ast.IntegerNode:
				found = strconv.Itoa(v.Value)
			case *ast.FloatNode:
				found = strconv.FormatFloat(v.Value, 'f', -1, 64)
			}
		}
	}))
	return found
}

// kindFieldProblems finds fields an expression reads that the probe's
// type has but this probe never observes: the workload counts (desired,
// ready, available, updated) of a kubernetes probe of pods by selector. At
// run time reading them never holds (FieldMissing); saying so here turns a
// run that could never pass into an error with its line and column.
func (e *Expression) kindFieldProblems(env *exprEnv) []exprProblem {
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return nil
	}
	var out []exprProblem
	ast.Walk(&tree.Node, visitorFunc(func(n *ast.Node) {
		m, ok := (*n).(*ast.MemberNode)
		if !ok {
			return
		}
		id, ok := m.Node.(*ast.IdentifierNode)
		if !ok {
			return
		}
		field, ok := m.Property.(*ast.StringNode)
		if !ok {
			return
		}
		p := env.probes[id.Value]
		if p == nil || p.Kubernetes == nil || p.Kubernetes.Kind() != KubernetesPodsKind || !workloadFields[field.Value] {
			return
		}
		out = append(out, exprProblem{
			from:    m.Property.Location().From,
			message: fmt.Sprintf("probe %s watches pods by selector, which have no %s: only a deployment, statefulSet or daemonSet does", id.Value, field.Value),
			hint:    "count its pods instead, e.g. " + id.Value + ".podsReady",
		})
	}))
	return out
}

type visitorFunc func(*ast.Node)

func (f visitorFunc) Visit(n *ast.Node) { f(n) }

// observationFields are the names expressions read on an observation type.
func observationFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			out = append(out, exprName(t.Field(i)))
		}
	}
	return out
}

// fieldType is the type of the field expressions call name, or nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.IsExported() && exprName(f) == name {
			return f.Type
		}
	}
	return nil
}

// identifiers lists the probes an expression reads directly, sorted and
// unique.
func identifiers(node ast.Node, env *exprEnv) []string {
	v := &identVisitor{env: env, seen: map[string]bool{}}
	ast.Walk(&node, v)
	sort.Strings(v.names)
	return v.names
}

type identVisitor struct {
	env   *exprEnv
	seen  map[string]bool
	names []string
}

func (v *identVisitor) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	if _, known := v.env.probes[id.Value]; known && !v.seen[id.Value] {
		v.seen[id.Value] = true
		v.names = append(v.names, id.Value)
	}
}

// historyPatcher checks the arguments of the history functions and
// rewrites them into the form the functions take: probe names and fields
// become string literals, a whole-number percentile a float, and percentile
// of a duration field percentileDuration. It runs once, before expr checks
// the types.
type historyPatcher struct {
	env      *exprEnv
	problems []exprProblem
	history  map[string]bool
	windows  map[string]time.Duration
	// argLocs are where the arguments of each call were written, by the
	// call's offset: expr's checker replaces some literals (an integer
	// passed as a float) with nodes that have no location.
	argLocs map[int][]file.Location
	src     string
	call    *ast.CallNode
}

// problem records a problem about argument arg of the call being visited.
func (v *historyPatcher) problem(arg ast.Node, msg, hint string) {
	loc := arg.Location()
	if loc == (file.Location{}) && v.call != nil {
		if v.argLocs == nil {
			v.argLocs = callArgLocations(v.src)
		}
		for i, a := range v.call.Arguments {
			if a == arg && i < len(v.argLocs[v.call.Location().From]) {
				loc = v.argLocs[v.call.Location().From][i]
			}
		}
	}
	v.problems = append(v.problems, exprProblem{from: loc.From, message: msg, hint: hint})
}

// callArgLocations maps each call's offset to its arguments' locations.
func callArgLocations(src string) map[int][]file.Location {
	out := map[int][]file.Location{}
	tree, err := parser.Parse(src)
	if err != nil {
		return out
	}
	ast.Walk(&tree.Node, visitorFunc(func(n *ast.Node) {
		if c, ok := (*n).(*ast.CallNode); ok {
			locs := make([]file.Location, len(c.Arguments))
			for i, a := range c.Arguments {
				locs[i] = a.Location()
			}
			out[c.Location().From] = locs
		}
	}))
	return out
}

// Visit implements ast.Visitor.
func (v *historyPatcher) Visit(n *ast.Node) {
	call, ok := (*n).(*ast.CallNode)
	if !ok {
		return
	}
	id, ok := call.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	args := call.Arguments
	v.call = call
	switch id.Value {
	case fnFailureRatio:
		if len(args) != 2 {
			return // expr says how many it takes
		}
		if p := v.probeArg(&args[0], id.Value); p != nil {
			v.windowArg(&args[1], id.Value, p)
		}
	case fnConsecutiveFailures:
		if len(args) != 1 {
			return
		}
		v.probeArg(&args[0], id.Value)
	case fnPercentile, fnPercentileDuration:
		if len(args) != 3 {
			return
		}
		p, typ := v.fieldArg(&args[0])
		v.rankArg(&args[1])
		if p != nil {
			v.windowArg(&args[2], fnPercentile, p)
		}
		if typ == reflect.TypeOf(time.Duration(0)) {
			id.Value = fnPercentileDuration
		} else if typ != nil {
			id.Value = fnPercentile
		}
	}
}

// probeArg checks that arg names a declared probe, and makes it a string.
func (v *historyPatcher) probeArg(arg *ast.Node, fn string) *Probe {
	var name string
	switch a := (*arg).(type) {
	case *ast.StringNode:
		name = a.Value
	case *ast.IdentifierNode:
		name = a.Value
		if _, ok := v.env.probes[name]; ok {
			ast.Patch(arg, &ast.StringNode{Value: name})
		}
	default:
		v.problem(*arg, fmt.Sprintf("the first argument of %s must be a probe's name", fn),
			fmt.Sprintf(`e.g. %s("checkout"%s)`, fn, map[bool]string{true: `, "30s"`}[fn == fnFailureRatio]))
		return nil
	}
	p, ok := v.env.probes[name]
	if !ok {
		v.problem(*arg, fmt.Sprintf("%s reads probe %q, which is not declared", fn, name), v.probeHint(name))
		return nil
	}
	v.history[name] = true
	return p
}

func (v *historyPatcher) probeHint(name string) string {
	if len(v.env.names) == 0 {
		return "no probes are declared under spec.probes"
	}
	return strictyaml.DidYouMean(name, v.env.names, "probes declared: "+strings.Join(v.env.names, ", "))
}

// windowArg checks that arg is a quoted duration no shorter than p's
// interval, and records it.
func (v *historyPatcher) windowArg(arg *ast.Node, fn string, p *Probe) {
	s, ok := (*arg).(*ast.StringNode)
	if !ok {
		v.problem(*arg, fmt.Sprintf("the window of %s must be a quoted duration", fn), `e.g. "30s"`)
		return
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil || d <= 0 {
		v.problem(*arg, fmt.Sprintf("window %q is not a positive duration", strictyaml.Shorten(s.Value)), "a number with a unit, e.g. \"30s\", \"5m\"")
		return
	}
	if every := p.Every; every > 0 && d < every {
		v.problem(*arg, fmt.Sprintf("window %s is shorter than the probe's interval (every: %s): it would see at most one observation", d, every),
			fmt.Sprintf("use a window of several intervals, e.g. %q", (10*every).String()))
		return
	}
	v.windows[s.Value] = d
}

// fieldArg checks that arg is probe.field, a number or duration field of a
// declared probe, and makes it the string "probe.field".
func (v *historyPatcher) fieldArg(arg *ast.Node) (*Probe, reflect.Type) {
	var probe, field string
	switch a := (*arg).(type) {
	case *ast.StringNode:
		probe, field, _ = strings.Cut(a.Value, ".")
	case *ast.MemberNode:
		id, ok1 := a.Node.(*ast.IdentifierNode)
		prop, ok2 := a.Property.(*ast.StringNode)
		if !ok1 || !ok2 {
			v.problem(*arg, "the first argument of percentile must be probe.field", "e.g. percentile(checkout.latency, 99, \"30s\")")
			return nil, nil
		}
		probe, field = id.Value, prop.Value
	default:
		v.problem(*arg, "the first argument of percentile must be probe.field", "e.g. percentile(checkout.latency, 99, \"30s\")")
		return nil, nil
	}
	p, ok := v.env.probes[probe]
	if !ok {
		v.problem(*arg, fmt.Sprintf("percentile reads probe %q, which is not declared", probe), v.probeHint(probe))
		return nil, nil
	}
	t := reflect.TypeOf(zeroObservation(p))
	ft := fieldType(t, field)
	fields := numericFields(t)
	if ft == nil {
		v.problem(*arg, fmt.Sprintf("%s observation has no field %q", p.Kind(), field), strictyaml.DidYouMean(field, fields, "fields with numbers: "+strings.Join(fields, ", ")))
		return nil, nil
	}
	switch ft.Kind() {
	case reflect.Int, reflect.Int64, reflect.Float64:
	default:
		v.problem(*arg, fmt.Sprintf("percentile needs a number or a duration, and %s.%s is a %s", probe, field, ft), "fields with numbers: "+strings.Join(fields, ", "))
		return nil, nil
	}
	ast.Patch(arg, &ast.StringNode{Value: probe + "." + field})
	v.history[probe] = true
	return p, ft
}

// numericFields are the fields of an observation type percentile can read.
func numericFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		switch f := t.Field(i); f.Type.Kind() {
		case reflect.Int, reflect.Int64, reflect.Float64:
			out = append(out, exprName(f))
		}
	}
	return out
}

// rankArg checks that arg is a number in (0, 100], and makes it a float.
func (v *historyPatcher) rankArg(arg *ast.Node) {
	var p float64
	switch a := (*arg).(type) {
	case *ast.IntegerNode:
		p = float64(a.Value)
		ast.Patch(arg, &ast.FloatNode{Value: p})
	case *ast.FloatNode:
		p = a.Value
	default:
		v.problem(*arg, "the percentile must be a number", "e.g. 99 or 99.9")
		return
	}
	if p <= 0 || p > 100 {
		v.problem(*arg, fmt.Sprintf("percentile %s is not between 0 and 100", strconv.FormatFloat(p, 'f', -1, 64)), "e.g. 50, 95, 99 or 99.9")
	}
}
