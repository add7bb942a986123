package experiments

import (
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// An expression that reads a field the latest observation does not have
// (the value of an empty Prometheus result; the status of a request that
// timed out) must not hold: a zero there is no evidence of health. The
// observation types are plain structs, so expr would read their zero
// values. Instead, at compile time, every read of a probe's field that can
// be missing (probe.field, probe["field"]) is rewritten into a call of a
// checking function of exactly the field's type,
//
//	errors.value  →  $prometheus.value(errors, "errors")
//
// which returns the field, or ErrFieldNotObserved when FieldMissing says it
// is not there. Types are checked as before, and `||`/`&&` still
// short-circuit, so `errors.empty || errors.value < 0.01` holds for an
// empty result. The checking functions' names cannot be written in a file
// (a probe name has no `$` or `.`).

// observedPatcher rewrites reads of fields that may be missing into
// checking calls, and collects the functions those calls need.
type observedPatcher struct {
	env   *exprEnv
	funcs map[string]any
}

// Visit implements ast.Visitor.
func (v *observedPatcher) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok || m.Method {
		return
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok || alwaysObserved[prop.Value] {
		return
	}
	p, known := v.env.probes[id.Value]
	if !known {
		return
	}
	name := observedName(p.Kind(), prop.Value)
	fn, bound := v.env.env[name]
	if !bound {
		return
	}
	v.funcs[name] = fn
	ast.Patch(n, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: name},
		Arguments: []ast.Node{&ast.IdentifierNode{Value: id.Value}, &ast.StringNode{Value: id.Value}},
	})
}

// observedName is the name of the checking function of a field of a kind.
func observedName(kind, field string) string { return "$" + kind + "." + field }

// bindObserved adds to env the checking function of every field of
// obsType that may be missing, so that expressions compile against them.
func bindObserved(env map[string]any, kind string, obsType reflect.Type) {
	for i := 0; i < obsType.NumField(); i++ {
		f := obsType.Field(i)
		if !f.IsExported() || alwaysObserved[exprName(f)] {
			continue
		}
		if name := observedName(kind, exprName(f)); env[name] == nil {
			env[name] = observedField(obsType, f.Type, exprName(f))
		}
	}
}

// observedField builds func(obs T, probe string) (F, error): the field
// named field of obs, or ErrFieldNotObserved.
func observedField(obsType, fieldT reflect.Type, field string) any {
	errType := reflect.TypeOf((*error)(nil)).Elem()
	fnType := reflect.FuncOf([]reflect.Type{obsType, reflect.TypeOf("")}, []reflect.Type{fieldT, errType}, false)
	index := -1
	for i := 0; i < obsType.NumField(); i++ {
		if f := obsType.Field(i); f.IsExported() && exprName(f) == field {
			index = i
		}
	}
	return reflect.MakeFunc(fnType, func(args []reflect.Value) []reflect.Value {
		obs, _ := args[0].Interface().(Observation)
		if why, missing := FieldMissing(obs, field); missing {
			var err error = &NotObservedError{Probe: args[1].String(), Field: field, Why: why}
			return []reflect.Value{reflect.Zero(fieldT), reflect.ValueOf(&err).Elem()}
		}
		return []reflect.Value{args[0].Field(index), reflect.Zero(errType)}
	}).Interface()
}

// NotObservedError is the error of an expression that read a field the
// latest observation does not have. It is ErrFieldNotObserved.
type NotObservedError struct {
	Probe, Field string
	// Why says why the field is missing.
	Why string
}

func (e *NotObservedError) Error() string {
	return fmt.Sprintf("%s.%s was not observed: %s", e.Probe, e.Field, e.Why)
}

// Is makes errors.Is(err, ErrFieldNotObserved) true.
func (e *NotObservedError) Is(target error) bool { return target == ErrFieldNotObserved }

// Hint says how a file accepts what was missing explicitly, when it can.
func (e *NotObservedError) Hint() string {
	if e.Field == "value" {
		return fmt.Sprintf("if an empty result is fine, say so: %s.empty || …", e.Probe)
	}
	return fmt.Sprintf("to decide what a failed observation means, read %s.ok first: %s.ok && …", e.Probe, e.Probe)
}
