package latency

import (
	"math"
	"time"
)

// Direction says which way of a connection a delay applies to.
type Direction string

// Directions. A round trip through DirBoth pays the delay twice.
const (
	DirBoth       Direction = "both"
	DirToUpstream Direction = "to-upstream"
	DirToClient   Direction = "to-client"
)

// Distribution is how the jitter is spread around the delay.
type Distribution string

// Distributions of the jitter.
const (
	// Uniform draws from [delay-jitter, delay+jitter].
	Uniform Distribution = "uniform"
	// Normal draws from a normal distribution with mean delay and standard
	// deviation jitter, cut symmetrically at 0 and 2*delay so that the mean
	// stays the delay.
	Normal Distribution = "normal"
)

// Shape is what a proxy does to the traffic it carries.
type Shape struct {
	Delay        time.Duration
	Jitter       time.Duration
	Distribution Distribution
	Direction    Direction
	// Share is the share of connections affected, 0 to 1.
	Share float64
}

// affects reports whether this shape delays a direction of a connection
// whose lot (drawn once per connection in [0, 1)) is lot.
func (s Shape) affects(lot float64, dir Direction) bool {
	if s.Delay <= 0 && s.Jitter <= 0 {
		return false
	}
	if lot >= s.Share {
		return false
	}
	return s.Direction == DirBoth || s.Direction == dir
}

// Sample draws one delay. uniform returns a number in [0, 1), normal one of
// the standard normal distribution (rand.Float64 and rand.NormFloat64; tests
// pass their own).
func (s Shape) Sample(uniform, normal func() float64) time.Duration {
	d, j := float64(s.Delay), float64(s.Jitter)
	if j <= 0 {
		return max(s.Delay, 0)
	}
	var v float64
	if s.Distribution == Normal {
		// Redrawn, not clamped, past the cut: a clamp would pile samples
		// on the bounds. At most a few draws: the cut is at least one
		// deviation away (jitter <= delay).
		for range 64 {
			v = d + j*normal()
			if v >= 0 && v <= 2*d {
				break
			}
		}
		v = math.Min(math.Max(v, 0), 2*d)
	} else {
		v = d - j + 2*j*uniform()
	}
	return max(time.Duration(v), 0)
}

// Longest is the longest delay Sample can draw: delay+jitter, or for the
// normal distribution its cut at 2*delay.
func (s Shape) Longest() time.Duration {
	if s.Jitter <= 0 {
		return max(s.Delay, 0)
	}
	if s.Distribution == Normal {
		return 2 * s.Delay
	}
	return s.Delay + s.Jitter
}
