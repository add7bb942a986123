package safety

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Causes of a blast radius refusal.
var (
	// ErrTooManyTargets: the faults act on more resolved things than
	// safety.maxTargets allows.
	ErrTooManyTargets = errors.New("more targets than safety.maxTargets")
	// ErrTooLargeShare: a target's resolved things are a larger share of
	// its candidates than safety.maxPercent allows.
	ErrTooLargeShare = errors.New("a larger share of a target than safety.maxPercent")
)

// Thing is one concrete thing a target resolved to (see sdk.Resolved).
type Thing struct {
	Key, Kind, Name string
}

// TargetSet is what one target of the file resolved to now.
type TargetSet struct {
	// Target is the target's name in the file.
	Target string
	Things []Thing
	// Total is how many candidates Things were chosen from (pods matching
	// a selector); 0 when the plugin reports none, and maxPercent does not
	// apply.
	Total int
}

// BlastLimits are the file's blast radius limits; zero means no limit.
type BlastLimits struct {
	MaxTargets int
	// MaxPercent is 0 to 100.
	MaxPercent float64
}

// CheckBlastRadius decides whether the faults may act on the resolved
// things: at most MaxTargets distinct things in all (one thing named by two
// targets counts once), and for each target whose plugin reports a total,
// at most MaxPercent of it. The error wraps ErrTooManyTargets or
// ErrTooLargeShare and names the things.
func CheckBlastRadius(sets []TargetSet, limits BlastLimits) error {
	seen := map[string]bool{}
	var names []string
	for _, s := range sets {
		for _, th := range s.Things {
			if !seen[th.Key] {
				seen[th.Key] = true
				names = append(names, th.Name)
			}
		}
	}
	if limits.MaxTargets > 0 && len(names) > limits.MaxTargets {
		return fmt.Errorf("the faults act on %d things (%s), more than safety.maxTargets %d: %w", len(names), strings.Join(names, ", "), limits.MaxTargets, ErrTooManyTargets)
	}
	if limits.MaxPercent <= 0 {
		return nil
	}
	for _, s := range sets {
		if s.Total <= 0 {
			continue
		}
		share := 100 * float64(len(s.Things)) / float64(s.Total)
		// A hair of tolerance: 1 of 3 is 33.33...%, within maxPercent 33.34%.
		if share > limits.MaxPercent+1e-9 {
			return fmt.Errorf("target %s resolved to %d of %d (%.4g%%), more than safety.maxPercent %.4g%%: %w", s.Target, len(s.Things), s.Total, math.Round(share*100)/100, limits.MaxPercent, ErrTooLargeShare)
		}
	}
	return nil
}
