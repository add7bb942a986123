package experiments

import (
	"fmt"
	"math"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
)

// An expression is evaluated on every observation while faults are live, so
// its cost is bounded before anything runs: an expression that is cheap
// until a fault makes a vector long, and then loops, must not be able to
// hold up the run. Three bounds are checked at validation:
//
//   - the size of the expression (expr's node limit, MaxExprNodes);
//   - how deeply iterating functions (all, any, filter, map, count, ...)
//     nest: each level multiplies the work, so at most MaxExprNesting;
//   - ranges with constant bounds (1..1e9) hold at most MaxExprRange
//     numbers.
//
// What remains (a long Prometheus vector, a large JSON body) is bounded by
// the probes' response caps and by the runtime budget of Eval.
const (
	// MaxExprNodes is how many syntax nodes an expression may have: far
	// more than any steady-state condition needs.
	MaxExprNodes = 1000
	// MaxExprNesting is how many iterating functions may be nested inside
	// each other's predicates.
	MaxExprNesting = 2
	// MaxExprRange is how many numbers a range with constant bounds may
	// hold.
	MaxExprRange = 10_000
)

// iteratingBuiltins are expr's built-in functions that run a predicate once
// per element of a collection.
var iteratingBuiltins = map[string]bool{
	"all": true, "none": true, "any": true, "one": true, "filter": true, "map": true,
	"find": true, "findIndex": true, "findLast": true, "findLastIndex": true,
	"count": true, "sum": true, "groupBy": true, "sortBy": true, "reduce": true,
}

// costProblems checks the expression's source against the bounds above.
// A source that does not parse is left to expr, which says why.
func (e *Expression) costProblems() []exprProblem {
	tree, err := parser.Parse(e.Source)
	if err != nil {
		return nil
	}
	c := &costChecker{}
	c.walk(tree.Node, nil)
	return c.problems
}

type costChecker struct {
	problems []exprProblem
	// nodes counts the syntax nodes; only the first excess is reported.
	nodes    int
	tooLarge bool
}

// walk visits n, whose enclosing iterating functions (outermost first) are
// outer: a predicate of an iterating function runs once per element, so a
// function inside it is one level deeper.
func (c *costChecker) walk(n ast.Node, outer []string) {
	if n == nil {
		return
	}
	c.nodes++
	if c.nodes > MaxExprNodes && !c.tooLarge {
		c.tooLarge = true
		c.problems = append(c.problems, exprProblem{
			from:    0, // the expression as a whole
			message: fmt.Sprintf("the expression is too large: more than %d parts", MaxExprNodes),
			hint:    "split it into several steady-state expressions, or compute the value in a probe",
		})
	}
	switch v := n.(type) {
	case *ast.BuiltinNode:
		if iteratingBuiltins[v.Name] {
			c.iterating(v, outer)
			return
		}
	case *ast.BinaryNode:
		if v.Operator == ".." {
			c.rangeSize(v)
		}
	}
	for _, child := range astChildren(n) {
		c.walk(child, outer)
	}
}

// iterating checks an iterating function's depth and walks its arguments:
// the collection is evaluated once, where the function is; the predicate
// (and reduce's initial value) once per element, one level deeper.
func (c *costChecker) iterating(b *ast.BuiltinNode, outer []string) {
	chain := append(append([]string(nil), outer...), b.Name)
	if len(chain) == MaxExprNesting+1 {
		// Deeper levels are the same mistake; one problem says it.
		c.problems = append(c.problems, exprProblem{
			from: b.Location().From,
			message: fmt.Sprintf("%s is nested %d deep in iterating functions (%s): at most %d may be nested, or one evaluation could run for ever",
				b.Name, len(chain), strings.Join(chain, " → "), MaxExprNesting),
			hint: "flatten the condition (count or filter once, then compare), or let a probe compute the value",
		})
	}
	for i, arg := range b.Arguments {
		if i == 0 {
			c.walk(arg, outer)
			continue
		}
		c.walk(arg, chain)
	}
}

// rangeSize refuses a range whose constant bounds hold too many numbers.
func (c *costChecker) rangeSize(b *ast.BinaryNode) {
	lo, ok1 := constantNumber(b.Left)
	hi, ok2 := constantNumber(b.Right)
	if !ok1 || !ok2 {
		return
	}
	if size := hi - lo + 1; size > MaxExprRange {
		c.problems = append(c.problems, exprProblem{
			from:    b.Left.Location().From,
			message: fmt.Sprintf("range %s..%s holds %s numbers: at most %d are allowed", formatNumber(lo), formatNumber(hi), formatNumber(size), MaxExprRange),
			hint:    fmt.Sprintf("an expression reads observations; a range of more than %d numbers is never needed to check one", MaxExprRange),
		})
	}
}

// constantNumber is the value of a number literal, negated or not.
func constantNumber(n ast.Node) (float64, bool) {
	switch v := n.(type) {
	case *ast.IntegerNode:
		return float64(v.Value), true
	case *ast.FloatNode:
		return v.Value, true
	case *ast.UnaryNode:
		if x, ok := constantNumber(v.Node); ok {
			switch v.Operator {
			case "-":
				return -x, true
			case "+":
				return x, true
			}
		}
	}
	return 0, false
}

func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%g", f)
}

// astChildren are the direct children of n, as ast.Walk visits them.
func astChildren(n ast.Node) []ast.Node {
	switch v := n.(type) {
	case *ast.UnaryNode:
		return []ast.Node{v.Node}
	case *ast.BinaryNode:
		return []ast.Node{v.Left, v.Right}
	case *ast.ChainNode:
		return []ast.Node{v.Node}
	case *ast.MemberNode:
		return []ast.Node{v.Node, v.Property}
	case *ast.SliceNode:
		return []ast.Node{v.Node, v.From, v.To}
	case *ast.CallNode:
		return append([]ast.Node{v.Callee}, v.Arguments...)
	case *ast.BuiltinNode:
		return v.Arguments
	case *ast.PredicateNode:
		return []ast.Node{v.Node}
	case *ast.VariableDeclaratorNode:
		return []ast.Node{v.Value, v.Expr}
	case *ast.SequenceNode:
		return v.Nodes
	case *ast.ConditionalNode:
		return []ast.Node{v.Cond, v.Exp1, v.Exp2}
	case *ast.ArrayNode:
		return v.Nodes
	case *ast.MapNode:
		return v.Pairs
	case *ast.PairNode:
		return []ast.Node{v.Key, v.Value}
	}
	return nil
}

// positioned turns problems at offsets of the source into problems at
// their place in the file.
func (e *Expression) positioned(in []exprProblem, path string) []Problem {
	out := make([]Problem, 0, len(in))
	for _, p := range in {
		line, col := e.offsetToLineCol(p.from)
		out = append(out, Problem{Pos: e.filePos(line, col), Path: path, Message: p.message, Hint: p.hint})
	}
	return out
}
