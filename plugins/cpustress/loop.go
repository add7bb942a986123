package cpustress

import (
	"context"
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
const maxCarry = 2 * period

// Priority steps: a worker that runs all the time and still falls short for
// a whole window raises its priority (lower nice) one step, down to minNice;
// one that has room again lowers it. Only where the plugin may (CAP_SYS_NICE
// for nice below 0); elsewhere it takes what the scheduler gives.
const (
	window  = 50 // periods: half a second
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
	prof := profile{load: float64(p.Load) / 100, ramp: p.Ramp}
	c := controller{w: w, prof: prof}
	c.base = w.cpu()
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
	base    time.Duration // the worker's CPU time at the start, less what was forgiven
	running bool
	owe     time.Duration // what the worker owed at the last step
	nice    int
	noNice  bool
	// over the current window: periods run in full while owing more than a
	// period, and the time the worker was let run
	short, n int
	let      time.Duration
}

// step is the control law: the CPU time the worker owes the target by the
// end of this period, bounded to maxCarry either way, is how long it runs
// in the rest of the period (left).
func (c *controller) step(elapsed, left time.Duration) time.Duration {
	used := c.w.cpu() - c.base
	owe := c.prof.owed(elapsed) - used
	switch {
	case owe > maxCarry:
		c.base += owe - maxCarry
		owe = maxCarry
	case owe < -maxCarry:
		c.base += owe + maxCarry
		owe = -maxCarry
	}
	c.owe = owe
	on := min(owe, left)
	c.let += max(on, 0)
	return on
}

// adapt counts the window and moves the worker's priority a step when the
// window shows it short while running all the time, or with room to spare.
func (c *controller) adapt(full bool) {
	c.n++
	if full && c.owe > period {
		c.short++
	}
	if c.n < window {
		return
	}
	short, let := c.short, c.let
	c.n, c.short, c.let = 0, 0, 0
	switch {
	case short > window/2 && c.nice > minNice && !c.noNice:
		c.renice(c.nice - 1)
	case c.nice < 0 && float64(let) < 0.9*float64(window*period) && short == 0:
		c.renice(c.nice + 1)
	}
}

func (c *controller) renice(n int) {
	if err := unix.Setpriority(unix.PRIO_PROCESS, c.w.pid, n); err != nil {
		c.noNice = true
		return
	}
	c.nice = n
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
