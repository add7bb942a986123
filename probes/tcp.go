package probes

import (
	"context"
	"net"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

type tcpProber struct{ spec *experiments.TCPProbe }

// newTCPProber is the tcp kind's Constructor.
func newTCPProber(p *experiments.Probe) (Prober, error) { return &tcpProber{spec: p.TCP}, nil }

// Probe opens one connection and closes it at once.
func (p *tcpProber) Probe(ctx context.Context) experiments.Observation {
	start := time.Now()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.spec.Address)
	o := experiments.TCPObservation{Latency: time.Since(start)}
	if err != nil {
		o.Error = describeErr(ctx, err)
		return o
	}
	_ = c.Close()
	o.OK = true
	return o
}
