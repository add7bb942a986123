package strictyaml

import (
	"fmt"
	"strings"
)

// DidYouMean suggests the closest of known to got, or falls back.
func DidYouMean(got string, known []string, fallback string) string {
	if s := Closest(got, known); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return fallback
}

// Suggest is the did-you-mean hint for got among known: `did you mean "x"?`
// when one is close, else "allowed: a, b, c" (empty when known is).
func Suggest(got string, known []string) string {
	return DidYouMean(got, known, HintList(known))
}

// HintList is "allowed: a, b, c", or empty when known is.
func HintList(known []string) string {
	if len(known) == 0 {
		return ""
	}
	return "allowed: " + strings.Join(known, ", ")
}

// Closest returns the name in known that got was most likely meant to be: a
// case-insensitive match, or one at most two edits away and not so short
// that two edits make it another word. It returns "" when none is close.
func Closest(got string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, got) {
			return k
		}
	}
	best, bestD := "", 3
	for _, k := range known {
		d := Distance(got, k)
		if d < bestD && 2*d <= len([]rune(k)) {
			best, bestD = k, d
		}
	}
	return best
}
