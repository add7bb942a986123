package latency

import "time"

// The bounds of the `with` parameters, in one place: the schema publishes
// them, and sdk.DecodeParams enforces what the schema says.
//
// MaxDelay is an hour. A delay is meant to make a dependency slow, not gone:
// past any client's timeout more delay changes nothing the experiment can
// observe, and an hour is far past every timeout and every run's
// maxDuration we have seen. It also keeps the proxy's arithmetic (the due
// time of a chunk, the jitter's 2*jitter+1 range) far from overflowing
// int64 nanoseconds, which is how a jitter of 1,500,000h once panicked the
// plugin mid-fault. Jitter is at most the delay: the jitter is uniform
// around the delay, and more than the delay would be cut at zero.
const MaxDelay = time.Hour

// durationPattern is the shape of a Go duration, for editors.
const durationPattern = `^(0|([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+)$`

// Connection and byte caps. The defaults hold a demo or a busy service's
// connection pool comfortably (512 connections, each with 1 MiB in flight:
// 5 MB/s per connection at 200ms), while the worst case stays bounded:
// a client that never reads costs at most maxBytesPerConnection plus one
// read buffer per direction, and all connections together at most
// maxBytesInFlight plus one read buffer per direction and connection.
const (
	minConnections        = 1
	maxConnections        = 10000
	DefaultMaxConnections = 512

	minBytes                     = 64 << 10
	maxBytesPerConnection        = 64 << 20
	DefaultMaxBytesPerConnection = 1 << 20
	maxBytesInFlight             = 1 << 30
	DefaultMaxBytesInFlight      = 64 << 20
)

// Limits bound what one proxy holds.
type Limits struct {
	// Connections is how many client connections it holds at once; a
	// client beyond it is closed at once and counted (Stats.Refused).
	Connections int
	// BytesPerConnection is how many bytes one connection (both
	// directions) may hold read but not yet delivered; past it the proxy
	// stops reading from that connection until its writer catches up.
	BytesPerConnection int64
	// BytesInFlight is the same for all connections together.
	BytesInFlight int64
}

// DefaultLimits are the limits of a proxy whose fault sets none.
func DefaultLimits() Limits {
	return Limits{Connections: DefaultMaxConnections, BytesPerConnection: DefaultMaxBytesPerConnection, BytesInFlight: DefaultMaxBytesInFlight}
}

// orDefault fills zero fields with the defaults.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.Connections <= 0 {
		l.Connections = d.Connections
	}
	if l.BytesPerConnection <= 0 {
		l.BytesPerConnection = d.BytesPerConnection
	}
	if l.BytesInFlight <= 0 {
		l.BytesInFlight = d.BytesInFlight
	}
	return l
}
