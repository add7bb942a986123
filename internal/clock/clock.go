// Package clock is the time the engine, safety and the SDK's lease keeper
// read: the real clock in production and a Fake that a test advances, so
// that schedules, intervals, leases and maxDuration are tested without
// sleeping. It must never hold package-level state: every Fake is its own.
package clock

import "time"

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the callers use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a real timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Or returns c, or the real clock when c is nil: the zero value of an
// options struct means the real clock.
func Or(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}
