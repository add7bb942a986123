package engine

import (
	"context"
	"net"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

type tcpProber struct{ spec *experiments.TCPProbe }

func newTCPProber(spec *experiments.TCPProbe) *tcpProber { return &tcpProber{spec: spec} }

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
