package probes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/chaos-run/chaos/experiments"
)

type prometheusProber struct {
	spec      *experiments.PrometheusProbe
	api       v1.API
	transport *http.Transport
	// capped caps every answer the client reads (see probe_limit.go).
	capped *capTransport
}

// capResponse implements responseCapper.
func (p *prometheusProber) capResponse(n experiments.ByteSize) { p.capped.max = n }

// Close drops the probe's idle connections when the run ends.
func (p *prometheusProber) Close() { p.transport.CloseIdleConnections() }

// newPrometheusProber is the prometheus kind's Constructor.
func newPrometheusProber(p *experiments.Probe) (Prober, error) {
	pr, err := newPrometheus(p.Prometheus)
	if err != nil {
		return nil, err
	}
	return pr, nil
}

func newPrometheus(spec *experiments.PrometheusProbe) (*prometheusProber, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}
	capped := &capTransport{next: tr}
	var rt http.RoundTripper = capped
	if a := spec.Auth; a != nil {
		rt = authTransport{next: rt, auth: a}
	}
	c, err := api.NewClient(api.Config{Address: spec.URL.Reveal(), RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", spec.URL, err)
	}
	return &prometheusProber{spec: spec, api: v1.NewAPI(c), transport: tr, capped: capped}, nil
}

// authTransport adds the probe's credentials to every request.
type authTransport struct {
	next http.RoundTripper
	auth *experiments.PrometheusAuth
}

func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	switch {
	case !t.auth.Bearer.IsZero():
		r.Header.Set("Authorization", "Bearer "+t.auth.Bearer.Reveal())
	case t.auth.Basic != nil:
		r.SetBasicAuth(t.auth.Basic.Username.Reveal(), t.auth.Basic.Password.Reveal())
	}
	return t.next.RoundTrip(r)
}

// Probe runs the instant query once. An empty vector is its own state
// (Empty), not a zero: "no errors were counted" and "the metric is gone"
// both look like that, and the owners must say which they mean.
func (p *prometheusProber) Probe(ctx context.Context) experiments.Observation {
	start := time.Now()
	val, _, _, err := p.api.Query(ctx, p.spec.Query, time.Now())
	o := experiments.PrometheusObservation{Latency: time.Since(start)}
	if err != nil {
		o.Error = describeErr(ctx, err)
		if errors.Is(err, ErrResponseTooLarge) {
			o.Error = tooLarge(p.capped.max).Error()
		}
		return o
	}
	switch v := val.(type) {
	case *model.Scalar:
		o.Value = float64(v.Value)
	case model.Vector:
		// Sorted by labels, so that "the first sample" is the same one
		// every time.
		sort.Slice(v, func(i, j int) bool { return v[i].Metric.String() < v[j].Metric.String() })
		for _, s := range v {
			labels := make(map[string]string, len(s.Metric))
			for k, lv := range s.Metric {
				labels[string(k)] = string(lv)
			}
			o.Vector = append(o.Vector, experiments.PrometheusSample{Labels: labels, Value: float64(s.Value)})
		}
		o.Empty = len(v) == 0
		if !o.Empty {
			o.Value = o.Vector[0].Value
		}
	default:
		o.Error = fmt.Sprintf("query returned a %s; use a query that returns a scalar or an instant vector", val.Type())
		return o
	}
	o.OK = true
	return o
}
