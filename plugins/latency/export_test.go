package latency

import "time"

// SleepPrecise and SleepUntil are sleepPrecise and sleepUntil, for the
// release-wait benchmark.
var (
	SleepPrecise = sleepPrecise
	SleepUntil   = sleepUntil
)

// WaitDue is (*Proxy).waitDue for a chunk read at read and due at due.
func WaitDue(p *Proxy, read, due time.Time) bool {
	return p.waitDue(chunk{read: read, due: due}, time.NewTimer(time.Hour))
}
