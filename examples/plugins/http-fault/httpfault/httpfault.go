// Package httpfault is the `http-fault` fault: an HTTP proxy on an endpoint
// target's listen address that forwards to its upstream and, while the
// fault is injected, answers a chosen status (503 by default) for a share
// of the requests instead of forwarding them.
//
// Prepare stands the proxy up passing every request through, so the steady
// state is checked through the same path as the fault; Inject turns the
// faulting on; reverting the fault turns it off at once; reverting the
// preparation closes the proxy. The proxy lives in the plugin process, so a
// plugin that dies takes its fault with it (no RevertByID needed).
//
// It depends only on plugins/sdk and the standard library, as every
// third-party plugin should.
package httpfault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// paramsSchema is the JSON Schema of `with`, the one source of truth for
// the parameters: chaos validate shows its problems at their position, and
// parse decodes with it through sdk.DecodeParams.
const paramsSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "status": {"type": "integer", "minimum": 400, "maximum": 599, "default": 503, "description": "HTTP status answered instead of forwarding, 400-599 (default 503)"},
    "share":  {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1, "description": "share of requests answered with status while the fault is live, more than 0 and at most 1 (default 1: every request)"},
    "body":   {"type": "string", "maxLength": 4096, "description": "body of the faulted answers (default: a line saying chaos injected it)"}
  }
}`

// Params are the fault's `with` parameters.
type Params struct {
	Status int     `json:"status"`
	Share  float64 `json:"share"`
	Body   string  `json:"body"`
}

func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	p := Params{Status: http.StatusServiceUnavailable, Share: 1}
	if probs := sdk.DecodeParams(raw, json.RawMessage(paramsSchema), &p); len(probs) > 0 {
		return p, probs
	}
	if p.Body == "" {
		p.Body = fmt.Sprintf("chaos http-fault: injected %d\n", p.Status)
	}
	return p, nil
}

// Fault is the http-fault plugin; call New.
type Fault struct {
	mu      sync.Mutex
	proxies map[string]*proxy // by listen address
	faults  map[string]*proxy // by fault handle
	seq     int
}

// New returns a plugin holding nothing.
func New() *Fault {
	return &Fault{proxies: map[string]*proxy{}, faults: map[string]*proxy{}}
}

// Describe implements sdk.Fault.
func (f *Fault) Describe() sdk.Description {
	return sdk.Description{
		Name:         "http-fault",
		Version:      Version,
		Summary:      "answers an HTTP status (503) for a share of requests through a proxy on the target endpoint",
		ParamsSchema: json.RawMessage(paramsSchema),
		TargetKinds:  []string{sdk.KindEndpoint},
	}
}

// Validate implements sdk.Fault.
func (f *Fault) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	_, probs := parse(req.Params)
	if _, err := endpoint(req.Target); err != nil {
		probs = append(probs, sdk.ParamProblem{Param: "target", Message: err.Error()})
	}
	return probs
}

func endpoint(t sdk.Target) (*sdk.EndpointTarget, error) {
	if t.Kind != sdk.KindEndpoint || t.Endpoint == nil {
		return nil, fmt.Errorf("http-fault acts on endpoint targets, not %s", t.Kind)
	}
	if t.Endpoint.Listen == "" || t.Endpoint.Upstream == "" {
		return nil, errors.New("http-fault needs the endpoint's listen and upstream addresses")
	}
	return t.Endpoint, nil
}

// Prepare implements sdk.Preparer: the proxy, passing everything through.
func (f *Fault) Prepare(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	ep, err := endpoint(req.Target)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.proxies[ep.Listen]; ok {
		return "", fmt.Errorf("a proxy on %s is already prepared", ep.Listen)
	}
	p, err := listen(ctx, ep.Listen, ep.Upstream)
	if err != nil {
		return "", err
	}
	f.proxies[ep.Listen] = p
	return "proxy:" + ep.Listen, nil
}

// Inject implements sdk.Fault: it turns faulting on in the prepared proxy,
// or stands a proxy of its own that its revert closes.
func (f *Fault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	params, probs := parse(req.Params)
	if len(probs) > 0 {
		return "", fmt.Errorf("%s: %s", probs[0].Param, probs[0].Message)
	}
	ep, err := endpoint(req.Target)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.proxies[ep.Listen]
	if !ok {
		if p, err = listen(ctx, ep.Listen, ep.Upstream); err != nil {
			return "", err
		}
		p.owned = true
	}
	f.seq++
	h := fmt.Sprintf("fault:%s:%d", ep.Listen, f.seq)
	p.set(&params)
	f.faults[h] = p
	return h, nil
}

// Revert implements sdk.Fault. A handle this process does not hold (a
// restarted plugin) names nothing live: the proxy died with the old
// process.
func (f *Fault) Revert(ctx context.Context, handle string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if listen, ok := strings.CutPrefix(handle, "proxy:"); ok {
		p, held := f.proxies[listen]
		if !held {
			return false, nil
		}
		delete(f.proxies, listen)
		return true, p.close()
	}
	p, held := f.faults[handle]
	if !held {
		return false, nil
	}
	delete(f.faults, handle)
	p.set(nil)
	if p.owned {
		return true, p.close()
	}
	return true, nil
}

// proxy is one HTTP proxy: it forwards to upstream, or answers the fault's
// status for its share of requests while a fault is set.
type proxy struct {
	srv   *http.Server
	owned bool

	mu    sync.Mutex
	fault *Params
	n     uint64 // requests seen while the fault is set
}

func listen(ctx context.Context, addr, upstream string) (*proxy, error) {
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", upstream, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Nothing was touched: the run is refused, not broken.
		return nil, fmt.Errorf("listen on %s: %w: %w", addr, sdk.ErrRefused, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = &http.Server{Handler: p.handler(rp), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		// A panic in a handler is recovered by net/http; Serve itself
		// returns when close closes the listener.
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

func (p *proxy) set(f *Params) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.n = f, 0
}

// pick says whether this request is faulted. It is deterministic: with
// share s, the n-th request is faulted when floor(n*s) grows, so exactly
// that share of any run of requests is, and tests need no luck.
func (p *proxy) pick() (*Params, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == nil {
		return nil, false
	}
	p.n++
	before := uint64(float64(p.n-1) * p.fault.Share)
	after := uint64(float64(p.n) * p.fault.Share)
	return p.fault, after > before
}

func (p *proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f, ok := p.pick(); ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Chaos-Fault", "http-fault")
			w.WriteHeader(f.Status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// close stops the proxy at once: the listener and every connection.
func (p *proxy) close() error {
	return p.srv.Close()
}
