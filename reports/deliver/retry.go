package deliver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/chaos-run/chaos/internal/clock"
)

// Retry bounds the attempts of one delivery. Zero fields take the default
// their comment gives.
type Retry struct {
	// Attempts is how many times a delivery is tried at most; default 5.
	Attempts int
	// Total is how long a delivery may take from its first attempt to the
	// start of its last; default 1m. A wait (a backoff, a Retry-After)
	// that would pass it is not waited: the delivery gives up at once.
	Total time.Duration
	// AttemptTimeout bounds each attempt (connect, send, answer); default
	// 10s.
	AttemptTimeout time.Duration
	// Backoff is the wait after the first failed attempt; each next wait
	// doubles it, up to MaxBackoff (default 1s and 15s). Each wait is
	// jittered to between half and all of it, so that many runs failing
	// against one server do not retry in step.
	Backoff, MaxBackoff time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Total <= 0 {
		r.Total = time.Minute
	}
	if r.AttemptTimeout <= 0 {
		r.AttemptTimeout = 10 * time.Second
	}
	if r.Backoff <= 0 {
		r.Backoff = time.Second
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 15 * time.Second
	}
	return r
}

// backoff is the jittered wait after the given failed attempt (1-based).
func (r Retry) backoff(attempt int) time.Duration {
	d := r.Backoff
	for i := 1; i < attempt && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	half := d / 2
	return half + rand.N(half+1)
}

// outcome is what one attempt says about trying again.
type outcome struct {
	err error
	// again is true when another attempt may succeed: a network error, a
	// timeout, an HTTP 5xx or 429, an SMTP 4xx.
	again bool
	// after is how long the server asked to wait (Retry-After); zero when
	// it did not say.
	after time.Duration
}

// do runs attempt until it succeeds, fails for good, or the bounds run
// out, and returns how many attempts it made.
func (r Retry) do(ctx context.Context, clk clock.Clock, attempt func(ctx context.Context) outcome) (int, error) {
	r = r.withDefaults()
	clk = clock.Or(clk)
	deadline := clk.Now().Add(r.Total)
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, r.AttemptTimeout)
		o := attempt(actx)
		cancel()
		if o.err == nil {
			return n, nil
		}
		if !o.again {
			return n, o.err
		}
		if n >= r.Attempts {
			return n, fmt.Errorf("%w after %d attempts: %w", ErrOutOfTime, n, o.err)
		}
		wait := r.backoff(n)
		if o.after > 0 {
			// The server knows when it will take the request again; an
			// earlier attempt would only be refused again.
			wait = o.after
		}
		if left := deadline.Sub(clk.Now()); wait > left {
			return n, fmt.Errorf("%w after %d attempts (the next would start after %s, past the %s allowed): %w",
				ErrOutOfTime, n, wait.Round(time.Millisecond), r.Total, o.err)
		}
		t := clk.NewTimer(wait)
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return n, fmt.Errorf("%w after %d attempts: %w (last: %w)", ErrOutOfTime, n, context.Cause(ctx), o.err)
		}
	}
}
