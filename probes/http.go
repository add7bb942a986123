package probes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// maxBody is how much of an answer an http probe reads unless its
// maxResponse says otherwise. Expressions that look at a body look at a
// health answer, not a download.
const maxBody = experiments.DefaultMaxResponse

type httpProber struct {
	spec   *experiments.HTTPProbe
	client *http.Client
	// maxBody is the probe's maxResponse; zero means maxBody.
	maxBody experiments.ByteSize
}

// capResponse implements responseCapper.
func (p *httpProber) capResponse(n experiments.ByteSize) { p.maxBody = n }

// Close drops the probe's idle connections when the run ends.
func (p *httpProber) Close() { p.client.CloseIdleConnections() }

// newHTTPProber is the http kind's Constructor.
func newHTTPProber(p *experiments.Probe) (Prober, error) {
	h, err := newHTTP(p.HTTP)
	if err != nil {
		return nil, err
	}
	return h, nil
}

func newHTTP(spec *experiments.HTTPProbe) (*httpProber, error) {
	// Each probe has its own transport: no shared global state, and a probe
	// whose connections are slowed by a fault does not slow another probe.
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	if spec.TLS != nil {
		cfg, err := tlsConfig(spec.TLS)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &httpProber{
		spec: spec,
		client: &http.Client{
			Transport: tr,
			// A probe observes the answer it is given; following a redirect
			// would observe another one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// tlsConfig loads the probe's CA and client certificate once, when the run
// starts, so that a missing file is an error before anything is injected.
func tlsConfig(t *experiments.TLSConfig) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // the file asks for it, for test rigs
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("read tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca %s holds no PEM certificate", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" || t.Key != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("load tls.cert and tls.key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Probe sends the request once. The context carries the probe's timeout; an
// answer that does not arrive in time is a failed observation.
func (p *httpProber) Probe(ctx context.Context) experiments.Observation {
	start := time.Now()
	o := experiments.HTTPObservation{}
	var body io.Reader
	// The request is where the file's secrets are revealed; the errors
	// below never quote the URL (describeErr unwraps *url.Error).
	if !p.spec.Body.IsZero() {
		body = strings.NewReader(p.spec.Body.Reveal())
	}
	req, err := http.NewRequestWithContext(ctx, p.spec.Method, p.spec.URL.Reveal(), body)
	if err != nil {
		o.Error = describeErr(ctx, err)
		return o
	}
	for k, v := range p.spec.Headers {
		req.Header.Set(k, v.Reveal())
	}
	resp, err := p.client.Do(req)
	if err != nil {
		o.Latency = time.Since(start)
		o.Error = describeErr(ctx, err)
		return o
	}
	defer func() { _ = resp.Body.Close() }()
	limit := p.maxBody
	if limit <= 0 {
		limit = maxBody
	}
	b, err := readCapped(resp.Body, limit)
	o.Latency = time.Since(start)
	o.Status = resp.StatusCode
	switch {
	case errors.Is(err, ErrResponseTooLarge):
		o.Error = err.Error()
		return o
	case err != nil:
		o.Error = "read body: " + describeErr(ctx, err)
		return o
	}
	o.Body = string(b)
	o.Headers = make(map[string]string, len(resp.Header))
	for k, v := range resp.Header {
		o.Headers[k] = strings.Join(v, ", ")
	}
	var parsed any
	if len(b) > 0 && json.Unmarshal(b, &parsed) == nil {
		o.JSON = parsed
	}
	o.OK = true
	return o
}

// describeErr says "timed out" plainly when the probe's deadline was hit,
// rather than the transport's long-winded message.
func describeErr(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return "timed out"
	}
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner.Error()
		}
	}
	return err.Error()
}
