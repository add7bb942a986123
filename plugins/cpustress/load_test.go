package cpustress

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// procCPU is the CPU time a process has used, from its process CPU clock
// (the kernel's accounting, in ns); 0 once it is gone.
func procCPU(pid int) time.Duration {
	return (&worker{clock: int32((^pid)<<3 | 2)}).cpu()
}

// load measures the CPU the processes pids() names used between samples,
// as percent of one core.
type load struct {
	pids func() []int
	last map[int]time.Duration
	at   time.Time
}

func newLoad(pids func() []int) *load {
	l := &load{pids: pids}
	l.sample()
	return l
}

// sample is the load since the previous sample, in percent of a core.
func (l *load) sample() float64 {
	now := time.Now()
	cur := map[int]time.Duration{}
	var used time.Duration
	for _, pid := range l.pids() {
		c := procCPU(pid)
		cur[pid] = c
		used += c - l.last[pid]
	}
	dt := now.Sub(l.at)
	l.last, l.at = cur, now
	if dt <= 0 {
		return 0
	}
	return 100 * float64(used) / float64(dt)
}

// TestHoldsTheLoad runs one worker at 40 % of a core on the host for three
// one-second samples and logs what the kernel measured. The machine is
// shared, so only what the plugin decides is asserted: it never gives a
// worker much more than the target.
func TestHoldsTheLoad(t *testing.T) {
	f := New()
	h, err := f.Inject(t.Context(), sdk.Request{Target: sdk.Target{Name: "node", Kind: sdk.KindHost}, Params: json.RawMessage(`{"load":40}`)})
	require.NoError(t, err)
	s := f.held[h]
	l := newLoad(func() []int { return []int{s.workers[0].pid} })
	var got []string
	sum := 0.0
	for range 3 {
		time.Sleep(time.Second) // a measurement window, not a wait for something
		v := l.sample()
		sum += v
		got = append(got, fmt.Sprintf("%.1f", v))
	}
	t.Logf("target 40%%, one-second samples: %s %%", strings.Join(got, " "))
	require.LessOrEqual(t, sum/3, 40.0+5, "the loop never gives a worker much more than it owes")
	require.Positive(t, sum, "the worker burns")
	pid := s.workers[0].pid
	was, err := f.Revert(t.Context(), h)
	require.NoError(t, err)
	require.True(t, was)
	_, err = os.Stat("/proc/" + strconv.Itoa(pid))
	require.ErrorIs(t, err, os.ErrNotExist, "when Revert returns the worker is gone, not only stopped")
}

// TestRampRisesToTheLoad: with a ramp the loop asks for the integral of a
// line, so the first half of the ramp owes a quarter of what the load would.
func TestRampRisesToTheLoad(t *testing.T) {
	p := profile{load: 0.8, ramp: 10 * time.Second}
	require.Equal(t, time.Duration(0), p.owed(0))
	require.InDelta(t, float64(time.Second), float64(p.owed(5*time.Second)), float64(time.Millisecond), "0.8 * 5s * 5s / 20s")
	require.InDelta(t, float64(4*time.Second+800*time.Millisecond), float64(p.owed(11*time.Second)), float64(time.Millisecond), "4s over the ramp, 0.8s after")
	require.Equal(t, 800*time.Millisecond, profile{load: 0.8}.owed(time.Second), "no ramp: the load from the start")
}

// TestWorkersAll: "all" is one worker per CPU of the machine.
func TestWorkersAll(t *testing.T) {
	p, probs := parse(json.RawMessage(`{"load":10,"workers":"all"}`))
	require.Empty(t, probs)
	require.Equal(t, 0, p.Workers)
	require.Equal(t, runtime.NumCPU(), p.workerCount())
	p, probs = parse(json.RawMessage(`{"load":10,"workers":3,"ramp":"2s"}`))
	require.Empty(t, probs)
	require.Equal(t, Params{Load: 10, Workers: 3, Ramp: 2 * time.Second}, p)
}
