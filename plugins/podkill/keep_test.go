package podkill

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKeptKillsAreBounded: reverted kills are remembered for Status, up to
// maxKept; beyond it the oldest reverted go first, and a kill not yet
// reverted is never forgotten.
func TestKeptKillsAreBounded(t *testing.T) {
	f := New()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keep("live", &kill{}) // never reverted
	for i := range maxKept + 10 {
		k := &kill{}
		f.keep(fmt.Sprintf("k%d", i), k)
		k.begin() // reverted right away, as after a short fault
	}
	require.Len(t, f.kills, maxKept, "the kills remembered are bounded")
	require.Len(t, f.order, maxKept, "and so is their order")
	require.Contains(t, f.kills, "live", "a kill not yet reverted is kept")
	require.NotContains(t, f.kills, "k0", "the oldest reverted kill was forgotten")
	require.Contains(t, f.kills, fmt.Sprintf("k%d", maxKept+9), "the newest is kept")
}
