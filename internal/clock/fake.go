package clock

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Fake is a Clock that moves only when a test advances it. Its timers fire
// in the order of their due times, each at most once, and a test can wait
// until the code under test has set a number of timers (it is then waiting
// for time to pass), so no test needs to sleep to "make sure".
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	seq     int
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever timers change
}

type fakeTimer struct {
	clock *Fake
	at    time.Time
	seq   int // creation order, to fire timers due at once in order
	c     chan time.Time
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires once the clock reaches now+d. A timer
// of zero or less fires at once.
func (c *Fake) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &fakeTimer{clock: c, at: c.now.Add(d), seq: c.seq, c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers = append(c.timers, t)
	c.changedLocked()
	return t
}

func (c *Fake) changedLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

// Stop removes the timer; it reports whether the timer was still pending.
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	for i, x := range t.clock.timers {
		if x == t {
			t.clock.timers = append(t.clock.timers[:i], t.clock.timers[i+1:]...)
			t.clock.changedLocked()
			return true
		}
	}
	return false
}

// Advance moves the clock by d, firing every timer due by then in the order
// of its due time.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool {
		if !c.timers[i].at.Equal(c.timers[j].at) {
			return c.timers[i].at.Before(c.timers[j].at)
		}
		return c.timers[i].seq < c.timers[j].seq
	})
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
			continue
		}
		t.c <- t.at
	}
	c.timers = kept
	c.changedLocked()
}

// Next returns how long until the earliest pending timer is due, and
// whether there is one.
func (c *Fake) Next() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	at := c.timers[0].at
	for _, t := range c.timers[1:] {
		if t.at.Before(at) {
			at = t.at
		}
	}
	return max(at.Sub(c.now), 0), true
}

// Pending is how many timers are waiting to fire.
func (c *Fake) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntilWithin waits until a pending timer is due within d of now: the
// code under test has armed the timer a test means to fire next.
func (c *Fake) BlockUntilWithin(ctx context.Context, d time.Duration) error {
	for {
		c.mu.Lock()
		due, changed := false, c.changed
		for _, t := range c.timers {
			if !t.at.After(c.now.Add(d)) {
				due = true
			}
		}
		c.mu.Unlock()
		if due {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for a timer due within %s: %w", d, context.Cause(ctx))
		}
	}
}

// BlockUntil waits until at least n timers are pending: the goroutines
// under test have done their work and wait for time to pass. It fails when
// ctx ends first.
func (c *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d timers (%d pending): %w", n, pending, context.Cause(ctx))
		}
	}
}
