package experiments

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// ByteSize is an amount of memory, written as a number of bytes (65536) or
// with a unit: 64KiB, 1MiB, 2MB. Binary units (KiB, MiB, GiB) are powers of
// 1024, decimal ones (kB, MB, GB) powers of 1000.
type ByteSize int64

// byteUnits are the units a ByteSize may be written with.
var byteUnits = map[string]int64{
	"": 1, "B": 1,
	"kB": 1000, "KB": 1000, "KiB": 1 << 10,
	"MB": 1000 * 1000, "MiB": 1 << 20,
	"GB": 1000 * 1000 * 1000, "GiB": 1 << 30,
}

// byteSizePattern is what the schema accepts as a written ByteSize.
const byteSizePattern = `^([0-9]+(\.[0-9]+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?$`

// DecodeNode implements NodeDecoder.
func (b *ByteSize) DecodeNode(n *yaml.Node, path string, probs *[]Problem) {
	if strictyaml.IsNull(n) {
		*b = 0
		return
	}
	at := strictyaml.PosOf(n)
	if n.Kind != yaml.ScalarNode {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: "expected a size, got " + strictyaml.Describe(n), Hint: "e.g. 1MiB"})
		return
	}
	v, err := parseByteSize(n.Value)
	if err != nil {
		*probs = append(*probs, Problem{Pos: at, Path: path, Message: fmt.Sprintf("%s is not a size", strictyaml.Describe(n)), Hint: "a number of bytes, or with a unit: 64KiB, 1MiB, 2MB"})
		return
	}
	*b = v
}

func parseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	mult, ok := byteUnits[unit]
	f, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || num == "" || f < 0 || math.IsInf(f, 0) || f*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return ByteSize(math.Round(f * float64(mult))), nil
}

// String prints the size with the largest binary unit that divides it:
// 1MiB, 64KiB, 1500B.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		n    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
