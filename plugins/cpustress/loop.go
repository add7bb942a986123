package cpustress

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// period is the control period: each period the loop reads the worker's CPU
// time and lets it run for what it still owes the target. Short enough that
// a one-second sample holds a hundred corrections, long enough that the two
// signals a period cost nothing measurable.
const period = 10 * time.Millisecond

// maxCarry bounds what the loop carries from one period to the next, either
// way: CPU time the machine did not give (it is forgiven, not paid back in a
// burst later) and CPU time given beyond the target.
const maxCarry = 5 * period

// Priority steps: a worker that runs all the time and still falls short for
// a whole window raises its priority (lower nice) one step, down to minNice;
// one that has room again lowers it. Only where the plugin may (CAP_SYS_NICE
// for nice below 0); elsewhere it takes what the scheduler gives.
const (
	window  = 20 // periods: a fifth of a second
	minNice = -19
)

// profile is the target load over time: linear from 0 to the load over the
// ramp, then flat.
type profile struct {
	load float64 // fraction of a core, 0.01 to 1
	ramp time.Duration
}

// owed is the CPU time the target asks for from the start to elapsed: the
// integral of the load.
func (p profile) owed(elapsed time.Duration) time.Duration {
	e := float64(elapsed)
	if p.ramp <= 0 {
		return time.Duration(p.load * e)
	}
	r := float64(p.ramp)
	if e <= r {
		return time.Duration(p.load * e * e / (2 * r))
	}
	return time.Duration(p.load * (r/2 + e - r))
}

// hold runs one worker's feedback loop until ctx ends or the worker does.
// It says on started once the worker runs (or, at a low ramp, is ready to).
func hold(ctx context.Context, w *worker, p Params, start time.Time, started chan<- struct{}) {
	// The loop must be let run when it asks to stop its worker, or a
	// worker it raised above a busy machine runs on: its thread gets the
	// highest priority the plugin may give (the thread goes back to how it
	// was before it returns to Go's pool).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer raiseThread()()
	prof := profile{load: float64(p.Load) / 100, ramp: p.Ramp}
	c := controller{w: w, prof: prof}
	c.base = w.cpu()
	c.winStart = c.base
	c.setRunning(c.prof.owed(period) > 0)
	started <- struct{}{}
	timer := time.NewTimer(0)
	defer timer.Stop()
	wait := func(until time.Time) bool {
		timer.Reset(time.Until(until))
		select {
		case <-ctx.Done():
			return false
		case <-w.done:
			return false
		case <-timer.C:
			return true
		}
	}
	for k := 1; ; k++ {
		end := start.Add(time.Duration(k) * period)
		now := time.Now()
		if end.Before(now) {
			// The loop itself was late (a busy machine): skip to the
			// period it is in rather than run every missed one at once.
			k = int(now.Sub(start)/period) + 1
			end = start.Add(time.Duration(k) * period)
		}
		on := c.step(end.Sub(start), end.Sub(now))
		if on > 0 && on < end.Sub(now) {
			c.setRunning(true)
			if !wait(now.Add(on)) {
				return
			}
			c.setRunning(false)
		} else {
			c.setRunning(on > 0)
		}
		if !wait(end) {
			return
		}
		c.adapt(on >= end.Sub(now))
	}
}

// controller is the state of one worker's loop.
type controller struct {
	w       *worker
	prof    profile
	base    time.Duration // the worker's CPU time at the start, less what was forgiven (more what was given beyond)
	running bool
	owe     time.Duration // what the worker owed at the last step
	nice    int
	noNice  bool
	// over the current window: periods run in full while owing more than a
	// period, and the time the worker was let run
	short, n int
	let      time.Duration
	winStart time.Duration // the worker's CPU time when the window began
}

// step is the control law: the CPU time the worker owes the target by the
// end of this period, bounded to maxCarry either way, is how long it runs
// in the rest of the period (left).
func (c *controller) step(elapsed, left time.Duration) time.Duration {
	used := c.w.cpu() - c.base
	owe := c.prof.owed(elapsed) - used
	switch {
	case owe > maxCarry:
		c.base -= owe - maxCarry
		owe = maxCarry
	case owe < -maxCarry:
		c.base -= owe + maxCarry
		owe = -maxCarry
	}
	c.owe = owe
	on := min(owe, left)
	c.let += max(on, 0)
	return on
}

// adapt counts the window and moves the worker's priority when the window
// shows it short while running all the time (as many steps as the share it
// got while running says it needs, each step about 1.25 times the weight),
// or one step back when it had room to spare.
func (c *controller) adapt(full bool) {
	c.n++
	if full && c.owe > period {
		c.short++
	}
	if c.n < window {
		return
	}
	short, let, got := c.short, c.let, c.w.cpu()-c.winStart
	c.n, c.short, c.let, c.winStart = 0, 0, 0, c.w.cpu()
	switch {
	case short > window/2 && c.nice > minNice && !c.noNice:
		c.renice(max(minNice, c.nice-niceSteps(float64(got)/float64(max(let, 1)), c.prof.load)))
	case c.nice < 0 && float64(let) < 0.8*float64(window*period) && short == 0:
		c.renice(c.nice + 1)
	}
}

// niceSteps is how many nice steps lower a worker that got share of a core
// while it was let run needs to get want of it, if the others on its core
// stay as they are: the odds share/(1-share) scale with the weight, and a
// nice step is about 1.25 times the weight.
func niceSteps(share, want float64) int {
	odds := func(x float64) float64 { x = min(max(x, 0.02), 0.98); return x / (1 - x) }
	steps := int(math.Ceil(math.Log(odds(want)/odds(share)) / math.Log(1.25)))
	return min(max(steps, 1), 6)
}

func (c *controller) renice(n int) {
	if err := unix.Setpriority(unix.PRIO_PROCESS, c.w.pid, n); err != nil {
		c.noNice = true
		return
	}
	c.nice = n
}

// raiseThread gives the calling thread nice -20 where the plugin may, and
// returns what puts it back.
func raiseThread() (restore func()) {
	tid := unix.Gettid()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return func() {}
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 17 {
		return func() {}
	}
	was, err := strconv.Atoi(fields[16])
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, -20) != nil {
		return func() {}
	}
	return func() { _ = unix.Setpriority(unix.PRIO_PROCESS, tid, was) }
}

// setRunning lets the worker run or stops it, through its pidfd.
func (c *controller) setRunning(run bool) {
	if run == c.running {
		return
	}
	sig := syscall.SIGSTOP
	if run {
		sig = syscall.SIGCONT
	}
	if c.w.proc.Signal(sig) == nil {
		c.running = run
	}
}
