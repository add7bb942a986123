package scheduler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
)

// TestScheduleBench10k (make bench; CHAOS_SCHED_BENCH=1) schedules 10,000
// entries on the real clock, each its own experiment file (a copy of
// experiments/examples/probe-http.yaml) on cron "S * * * * *" with S
// spread over the minute (about 167 fires a second), with a run that does
// nothing, for CHAOS_SCHED_BENCH_SECONDS (30 by default). It prints the
// process's resident memory at the end and the fire jitter: from the time
// a fire was due to the moment its run started (after the freeze, policy
// and conflict checks, which read the experiment file). Every fire is
// noted in a progress record in a state directory on disk, as a single
// `chaos schedule` does (CHAOS_SCHED_BENCH_MODE=progress, the default);
// CHAOS_SCHED_BENCH_MODE=claims claims every fire first instead, as a
// leader of `chaos schedule --leader-elect` does, and none records
// nothing, to compare.
func TestScheduleBench10k(t *testing.T) {
	if os.Getenv("CHAOS_SCHED_BENCH") == "" {
		t.Skip("a benchmark: make bench runs it (CHAOS_SCHED_BENCH=1)")
	}
	const n = 10000
	secs := 30
	if s, err := strconv.Atoi(os.Getenv("CHAOS_SCHED_BENCH_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "experiments", "examples", "probe-http.yaml"))
	require.NoError(t, err)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("apiVersion: chaos/v1\nkind: Schedule\nmetadata: {name: bench}\nspec:\n  entries:\n")
	for i := range n {
		f := fmt.Sprintf("exp-%05d.yaml", i)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), example, 0o644))
		fmt.Fprintf(&b, "    - {name: e%05d, experiments: [%s], cron: \"%d * * * * *\", concurrencyPolicy: Allow}\n", i, f, i%60)
	}
	path := filepath.Join(dir, "schedule.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	s, err := experiments.LoadSchedule(path)
	require.NoError(t, err)

	var (
		mu     sync.Mutex
		jitter []time.Duration
		steady []time.Duration // of fires due 10s or more after the start
		skips  = map[SkipReason]int{}
		begun  = time.Now()
	)
	var (
		claims   *Claims
		progress *Progress
		mode     = os.Getenv("CHAOS_SCHED_BENCH_MODE")
		state    = filepath.Join(t.TempDir(), "fires", "bench")
	)
	switch mode {
	case "", "progress":
		mode = "progress"
		progress, err = OpenProgress(state, "bench_1")
		require.NoError(t, err)
		defer func() { require.NoError(t, progress.Close()) }()
	case "claims":
		claims = &Claims{Dir: state, Identity: "bench_1", Leading: func() error { return nil }}
	case "none":
	default:
		t.Fatalf("CHAOS_SCHED_BENCH_MODE=%q: give progress, claims or none", mode)
	}
	sch := &Scheduler{
		Schedule: s,
		Claims:   claims,
		Progress: progress,
		RunFile: func(ctx context.Context, path, dir string) *reports.Record {
			return &reports.Record{Verdict: reports.Passed}
		},
		Fired: func(o Outcome) {
			mu.Lock()
			defer mu.Unlock()
			if o.Skip != "" {
				skips[o.Skip]++
				return
			}
			jitter = append(jitter, o.Started.Sub(o.At))
			if o.At.Sub(begun) >= 10*time.Second {
				steady = append(steady, o.Started.Sub(o.At))
			}
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(secs)*time.Second)
	defer cancel()
	_ = sch.Run(ctx)
	rss := residentMB(t)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(jitter)
	require.NotEmpty(t, jitter, "some fires ran")
	slices.Sort(steady)
	pct := func(p float64) time.Duration { return jitter[int(float64(len(jitter)-1)*p)] }
	steadyP99 := time.Duration(0)
	if len(steady) > 0 {
		steadyP99 = steady[int(float64(len(steady)-1)*0.99)]
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("schedule-10k: entries=%d mode=%s seconds=%d runs=%d skipped=%v rss=%.1fMB heap=%.1fMB jitter p50=%s p99=%s max=%s; from 10s on: p99=%s\n",
		n, mode, secs, len(jitter), skips, rss, float64(ms.HeapInuse)/(1<<20), pct(0.5), pct(0.99), jitter[len(jitter)-1], steadyP99)
}

// residentMB is this process's resident set (VmRSS).
func residentMB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			require.NoError(t, err)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
