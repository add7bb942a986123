package experiments_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestExpressionCostIsBoundedAtValidation: iterating functions may nest two
// deep, not three; a constant range may hold MaxExprRange numbers, not a
// billion; and each refusal points at the place in the file.
func TestExpressionCostIsBoundedAtValidation(t *testing.T) {
	for _, ok := range []string{
		`all(1..100, {any(1..100, {# > 0})})`,
		`count(1..10000, {# > 5}) > 0`,
		`any([checkout.status], {# == 200}) && count([1, 2]) == 2`,
		`all(1..10, {# > 0}) && all(1..10, {any(1..10, {# > 0})})`,
	} {
		parseOK(t, withSteady("'"+ok+"'"))
	}
	for _, tc := range []struct {
		src, want string
		col       int
	}{
		{`all(1..3, {all(1..3, {any(1..3, {# > 0})})})`, "any is nested 3 deep in iterating functions (all → all → any)", 30},
		{`all(1..3, {filter(map(1..3, {all(1..3, {true})}), {true}) != nil})`, "all is nested 3 deep in iterating functions (all → map → all)", 37},
		{`any(-5..1000000000, {# == 1})`, "range -5..1000000000 holds 1000000006 numbers", 12},
	} {
		probs := problems(t, withSteady("'"+tc.src+"'"))
		require.Len(t, probs, 1, "one problem for %s, at the place that costs", tc.src)
		require.Contains(t, probs[0].Message, tc.want)
		require.Equal(t, 16, probs[0].Pos.Line)
		require.Equal(t, tc.col, probs[0].Pos.Col, "the problem points into %s", tc.src)
	}
	big := "'checkout.status == 0" + strings.Repeat(" || checkout.status == 1", 400) + "'"
	probs := problems(t, withSteady(big))
	require.Len(t, probs, 1)
	require.Contains(t, probs[0].Message, "too large")
}
