package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// Percent is a share written as "99.9%" or as a plain number of percent
// (99.9). It holds the number of percent: 99.9, not 0.999.
type Percent float64

// DecodeNode implements NodeDecoder.
func (p *Percent) DecodeNode(n *yaml.Node, path string, probs *[]Problem) {
	if strictyaml.IsNull(n) {
		*p = 0
		return
	}
	at := strictyaml.PosOf(n)
	if n.Kind != yaml.ScalarNode {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: "expected a percentage, got " + strictyaml.Describe(n), Hint: "e.g. 99.9%"})
		return
	}
	v, err := parsePercent(n.Value)
	if err != nil {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: fmt.Sprintf("%s is not a percentage", strictyaml.Describe(n)), Hint: "a number with %, e.g. 99.9%"})
		return
	}
	*p = Percent(v)
}

func parsePercent(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimSpace(strings.TrimSuffix(s, "%"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a percentage", s)
	}
	return v, nil
}

// String prints the percentage as written in a file: 99.9%.
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%"
}

// LongDuration is a duration that may also be written in days, for SLO
// windows: 30d, 7d12h, or anything time.ParseDuration accepts. A day is 24
// hours here; an SLO window does not care about daylight saving.
type LongDuration time.Duration

// DecodeNode implements NodeDecoder.
func (d *LongDuration) DecodeNode(n *yaml.Node, path string, probs *[]Problem) {
	if strictyaml.IsNull(n) {
		*d = 0
		return
	}
	at := strictyaml.PosOf(n)
	if n.Kind != yaml.ScalarNode {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: "expected a duration, got " + strictyaml.Describe(n), Hint: "e.g. 30d"})
		return
	}
	v, err := parseLongDuration(n.Value)
	if err != nil {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: fmt.Sprintf("%s is not a duration", strictyaml.Describe(n)), Hint: "days and a Go duration, e.g. 30d, 7d12h, 720h"})
		return
	}
	*d = LongDuration(v)
}

// parseLongDuration parses [Nd][Go duration].
func parseLongDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days, rest := "", s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, rest = s[:i], s[i+1:]
	}
	var total time.Duration
	if days != "" {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		total = time.Duration(n) * 24 * time.Hour
	}
	if rest != "" {
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") && days != "" {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		d, err := time.ParseDuration(rest)
		if err != nil || (rest != "0" && strings.Trim(rest, "+-0123456789.") == "") {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		total += d
	} else if days == "" {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	return total, nil
}

// String prints the duration in days where it is whole days: 30d.
func (d LongDuration) String() string {
	const day = 24 * time.Hour
	td := time.Duration(d)
	if td > 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return td.String()
}
