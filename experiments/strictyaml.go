package experiments

import "github.com/chaos-run/chaos/internal/strictyaml"

// The positions and problems of the format are those of the strict decoder
// (internal/strictyaml), which walks a file into these types; the names stay
// here because every user of the format speaks them.
type (
	// Pos is a 1-based line and column in a file.
	Pos = strictyaml.Pos
	// Problem is one thing wrong with a file.
	Problem = strictyaml.Problem
	// FieldPos is where a field stands in a file: its key and its value.
	FieldPos = strictyaml.FieldPos
	// NodeDecoder lets a type of the format decode itself (expressions,
	// sizes, percentages).
	NodeDecoder = strictyaml.NodeDecoder
)
