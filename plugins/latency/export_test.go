package latency

import (
	"net"
	"time"
)

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

// Stamped reads a connection with the kernel's receive time of the bytes
// (see arrival.go), for the side-by-side benchmark's measurement at the
// sockets.
type Stamped = stampedReader

// NewStamped turns on receive timestamps for c (nil when the socket does
// not take them).
func NewStamped(c *net.TCPConn) *Stamped { return newStampedReader(c) }

// ReadStamped reads into buf and returns what it read and when it arrived
// in the kernel (the read time where the kernel did not stamp it).
func ReadStamped(r *Stamped, buf []byte) (int, time.Time, error) { return r.read(buf) }
