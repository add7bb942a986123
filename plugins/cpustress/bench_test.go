package cpustress

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// TestCPUStressBench is `make bench`'s side-by-side of cpustress and
// stress-ng --cpu-load, one worker, for 25/50/80/100 % with the machine
// otherwise alone, with the other core busy, and with both cores saturated
// (busy loops of the test's own). Per point: the mean absolute error of the
// one-second samples after the first second, the time until a 500 ms window
// is first within ±5 points of the target, and the time from the revert
// (SIGTERM for stress-ng, as the tools that run it do) until the workers are
// gone. It runs only with CHAOS_CPU_BENCH=1 and prints lines starting
// "cpu-stress"; it asserts nothing.
func TestCPUStressBench(t *testing.T) {
	if os.Getenv("CHAOS_CPU_BENCH") == "" {
		t.Skip("a benchmark: set CHAOS_CPU_BENCH=1 (make bench does)")
	}
	secs := 4
	if s := os.Getenv("CHAOS_CPU_BENCH_SECONDS"); s != "" {
		var err error
		secs, err = strconv.Atoi(s)
		require.NoError(t, err)
	}
	stressNG, _ := exec.LookPath("stress-ng")
	fmt.Printf("cpu-stress %-10s %-10s %5s %10s %10s %12s   (%d s per point; mean of 1-s samples after the first)\n", "tool", "machine", "load", "MAE(pp)", "settle", "revert→<5%", secs)
	for _, busy := range []int{0, 1, 2} {
		for _, load := range []int{25, 50, 80, 100} {
			stop := burners(t, busy)
			fmt.Println(point(t, "cpustress", busy, load, secs, startPlugin))
			if stressNG != "" {
				fmt.Println(point(t, "stress-ng", busy, load, secs, func(t *testing.T, load int) (func() []int, func()) { return startStressNG(t, stressNG, load) }))
			}
			stop()
		}
	}
	if stressNG == "" {
		fmt.Println("cpu-stress stress-ng not installed (scripts/deps.sh installs it as root): no side-by-side")
	}
}

var machines = []string{"alone", "1-busy", "saturated"}

// point runs one tool at one load and measures it.
func point(t *testing.T, tool string, busy, load, secs int, start func(*testing.T, int) (func() []int, func())) string {
	pids, revert := start(t, load)
	l := newLoad(pids)
	began := time.Now()
	settle := time.Duration(-1)
	var win []float64 // 50 ms samples
	var samples []float64
	acc, n := 0.0, 0
	for time.Since(began) < time.Duration(secs)*time.Second {
		time.Sleep(50 * time.Millisecond) // a sampling interval, not a wait for something
		v := l.sample()
		win = append(win, v)
		if len(win) > 10 {
			win = win[1:]
		}
		if settle < 0 && len(win) == 10 && math.Abs(mean(win)-float64(load)) <= 5 {
			settle = time.Since(began)
		}
		acc += v
		n++
		if n == 20 {
			if time.Since(began) > 1100*time.Millisecond {
				samples = append(samples, acc/float64(n))
			}
			acc, n = 0, 0
		}
	}
	mae := 0.0
	for _, s := range samples {
		mae += math.Abs(s - float64(load))
	}
	mae /= float64(max(len(samples), 1))
	r := time.Now()
	revert()
	gone := time.Since(r)
	st := "never"
	if settle >= 0 {
		st = settle.Round(10 * time.Millisecond).String()
	}
	return fmt.Sprintf("cpu-stress %-10s %-10s %4d%% %10.1f %10s %12s   samples %s", tool, machines[busy], load, mae, st, gone.Round(100*time.Microsecond), fmtSamples(samples))
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func fmtSamples(xs []float64) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(out, " ")
}

// startPlugin injects one cpustress worker on the host; the revert is the
// plugin's Revert, which returns once the worker is gone.
func startPlugin(t *testing.T, load int) (func() []int, func()) {
	f := New()
	h, err := f.Inject(t.Context(), sdk.Request{Target: sdk.Target{Name: "node", Kind: sdk.KindHost}, Params: json.RawMessage(fmt.Sprintf(`{"load":%d}`, load))})
	require.NoError(t, err)
	pid := f.held[h].workers[0].pid
	return func() []int { return []int{pid} }, func() {
		_, err := f.Revert(context.WithoutCancel(t.Context()), h)
		require.NoError(t, err)
	}
}

// startStressNG runs stress-ng with one cpu worker at load; its processes
// are it and its children. The revert is SIGTERM, and it is done when
// stress-ng has exited (it waits for its workers).
func startStressNG(t *testing.T, bin string, load int) (func() []int, func()) {
	cmd := exec.Command(bin, "--cpu", "1", "--cpu-load", strconv.Itoa(load), "--timeout", "600s", "--quiet")
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	pids := func() []int { return append(childrenOf(cmd.Process.Pid), cmd.Process.Pid) }
	return pids, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}
}

func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// burners starts n busy loops of the test's own, as the rest of a busy
// machine.
func burners(t *testing.T, n int) (stop func()) {
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("/bin/sh", "-c", "while :; do :; done")
		require.NoError(t, c.Start())
		cmds = append(cmds, c)
	}
	return func() {
		for _, c := range cmds {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}
}
