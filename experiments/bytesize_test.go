package experiments

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"65536": 65536, "64KiB": 64 << 10, "1MiB": 1 << 20, "1 MiB": 1 << 20, "2MB": 2_000_000,
		"1.5KiB": 1536, "10kB": 10_000, "1GiB": 1 << 30, "100B": 100,
	} {
		got, err := parseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "lots", "1XB", "-1KiB", "1e400", "MiB", "9999999999GiB"} {
		_, err := parseByteSize(in)
		require.Error(t, err, "%q is not a size", in)
	}
	require.Equal(t, "1MiB", ByteSize(1<<20).String())
	require.Equal(t, "1500B", ByteSize(1500).String())
}
