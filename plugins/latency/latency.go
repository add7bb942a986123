// Package latency is the `latency` fault: it adds delay and jitter to
// traffic on an endpoint.
//
// In proxy mode (the only mode so far) the plugin stands a TCP proxy on the
// target's listen address that forwards to its upstream. Prepare starts the
// proxy passing traffic unchanged, so the steady state is checked through
// the same path as the fault; Inject adds the delay; Revert of the fault
// removes the delay at once (chunks held back are delivered, none lost);
// Revert of the prepared handle closes the proxy. The proxy lives in the
// plugin process, so a plugin that dies takes the fault with it.
//
// This package must only depend on plugins/sdk and the standard library.
package latency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// paramsSchema is the JSON Schema of the `with` parameters, and the one
// source of truth for them: parse checks the parameters against it with
// sdk.DecodeParams, so an editor, `chaos validate` and the plugin say the
// same (limits.go holds the numbers). Durations are strings, which JSON
// Schema cannot compare: they are marked "format": "duration" and their
// bounds stated in x-minimum/x-exclusiveMinimum/x-maximum, which editors show
// and DecodeParams checks.
func paramsSchema() string {
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["delay"],
  "properties": {
    "mode":   {"enum": ["proxy"], "default": "proxy", "description": "proxy: a TCP proxy from the target's listen address to its upstream"},
    "delay":  {"type": "string", "format": "duration", "pattern": %[1]q, "x-exclusiveMinimum": "0s", "x-maximum": %[2]q, "description": "delay added to every chunk in both directions, more than 0 and at most %[2]s (a longer delay is an outage: stop the upstream instead), e.g. 200ms"},
    "jitter": {"type": "string", "format": "duration", "pattern": %[1]q, "x-minimum": "0s", "x-maximum": %[2]q, "description": "uniform jitter around the delay, at most the delay (and %[2]s), e.g. 10ms"},
    "maxConnections":        {"type": "integer", "minimum": %[3]d, "maximum": %[4]d, "default": %[5]d, "description": "client connections the proxy holds at once; more are closed at once and counted"},
    "maxBytesPerConnection": {"type": "integer", "minimum": %[6]d, "maximum": %[7]d, "default": %[8]d, "description": "bytes one connection may hold in flight (read, not yet delivered); past it the proxy stops reading that side"},
    "maxBytesInFlight":      {"type": "integer", "minimum": %[6]d, "maximum": %[9]d, "default": %[10]d, "description": "bytes all connections of the proxy together may hold in flight; at least maxBytesPerConnection"}
  }
}`, durationPattern, shortDuration(MaxDelay),
		minConnections, maxConnections, DefaultMaxConnections,
		minBytes, maxBytesPerConnection, DefaultMaxBytesPerConnection,
		maxBytesInFlight, DefaultMaxBytesInFlight)
}

// Params are the fault's `with` parameters.
type Params struct {
	Mode   string
	Delay  time.Duration
	Jitter time.Duration
	Limits Limits
}

// Fault is the latency plugin. Its zero value is not usable; call New.
type Fault struct {
	mu      sync.Mutex
	proxies map[string]*held // by listen address
	faults  map[string]*held // by fault handle
	seq     int
}

// held is a proxy the plugin holds, and whether a fault owns it outright
// (injected without Prepare, so the revert closes it too).
type held struct {
	proxy    *Proxy
	listen   string
	upstream string
	owned    bool
}

// New returns a latency plugin holding nothing.
func New() *Fault {
	return &Fault{proxies: map[string]*held{}, faults: map[string]*held{}}
}

// Describe implements sdk.Fault.
func (f *Fault) Describe() sdk.Description {
	return sdk.Description{
		Name:         "latency",
		Version:      Version,
		Summary:      "adds delay and jitter to TCP traffic through a proxy on the target endpoint",
		ParamsSchema: json.RawMessage(paramsSchema()),
		TargetKinds:  []string{sdk.KindEndpoint},
	}
}

// wireParams is the shape of the `with` parameters, decoded by
// sdk.DecodeParams after the schema accepted them; absent fields keep the
// defaults set before decoding.
type wireParams struct {
	Mode                  string        `json:"mode"`
	Delay                 time.Duration `json:"delay"`
	Jitter                time.Duration `json:"jitter"`
	MaxConnections        int           `json:"maxConnections"`
	MaxBytesPerConnection int64         `json:"maxBytesPerConnection"`
	MaxBytesInFlight      int64         `json:"maxBytesInFlight"`
}

// parse decodes the parameters against the schema (every bound the schema
// states is checked there) and checks what a schema cannot say: one
// parameter compared with another.
func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	w := wireParams{Mode: "proxy", MaxConnections: DefaultMaxConnections, MaxBytesPerConnection: DefaultMaxBytesPerConnection, MaxBytesInFlight: DefaultMaxBytesInFlight}
	if probs := sdk.DecodeParams(raw, json.RawMessage(paramsSchema()), &w); len(probs) > 0 {
		return Params{Mode: "proxy", Limits: DefaultLimits()}, probs
	}
	p := Params{Mode: w.Mode, Delay: w.Delay, Jitter: w.Jitter, Limits: Limits{Connections: w.MaxConnections, BytesPerConnection: w.MaxBytesPerConnection, BytesInFlight: w.MaxBytesInFlight}}
	var probs []sdk.ParamProblem
	if p.Jitter > p.Delay {
		probs = append(probs, sdk.ParamProblem{Param: "with.jitter", Message: fmt.Sprintf("jitter %s is more than the delay %s: the delay would be cut at zero, no longer uniform around it", shortDuration(p.Jitter), shortDuration(p.Delay))})
	}
	if p.Limits.BytesInFlight < p.Limits.BytesPerConnection {
		probs = append(probs, sdk.ParamProblem{Param: "with.maxBytesInFlight", Message: fmt.Sprintf("maxBytesInFlight %d is less than maxBytesPerConnection %d: one connection could never fill its share", p.Limits.BytesInFlight, p.Limits.BytesPerConnection)})
	}
	return p, probs
}

// shortDuration writes a duration as a person would: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func checkTarget(t sdk.Target) []sdk.ParamProblem {
	if t.Kind != sdk.KindEndpoint || t.Endpoint == nil {
		return []sdk.ParamProblem{{Param: "target", Message: fmt.Sprintf("latency needs an endpoint target, %s is a %s target", t.Name, t.Kind)}}
	}
	return nil
}

// Validate implements sdk.Fault.
func (f *Fault) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	_, probs := parse(req.Params)
	return append(checkTarget(req.Target), probs...)
}

// Prepare implements sdk.Preparer: a pass-through proxy on the target.
func (f *Fault) Prepare(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if probs := checkTarget(req.Target); probs != nil {
		return "", fmt.Errorf("%w: %s", sdk.ErrInvalidParams, probs[0].Message)
	}
	// Only the limits matter to a pass-through proxy, but a request the
	// schema refuses is refused whole: Validate said so before.
	params, probs := parse(req.Params)
	if len(probs) > 0 {
		return "", fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	}
	ep := req.Target.Endpoint
	// The SDK marks it as a preparation on the wire; the plugin never sees
	// that mark.
	handle := "proxy:" + ep.Listen
	f.mu.Lock()
	defer f.mu.Unlock()
	if h, ok := f.proxies[ep.Listen]; ok {
		if err := sameUpstream(h, ep); err != nil {
			return "", err
		}
		if !h.owned {
			h.proxy.SetLimits(params.Limits)
			return handle, nil
		}
	}
	p, err := ListenOptions(ep.Listen, ep.Upstream, Options{Limits: params.Limits, Guard: sdk.Guard(ctx)})
	if err != nil {
		return "", startProxyError(ep.Listen, err)
	}
	f.proxies[ep.Listen] = &held{proxy: p, listen: ep.Listen, upstream: ep.Upstream}
	return handle, nil
}

// sameUpstream refuses a second target on a listen address the plugin
// already proxies to another upstream: it would silently not be faulted.
func sameUpstream(h *held, ep *sdk.EndpointTarget) error {
	if h.upstream == ep.Upstream {
		return nil
	}
	return fmt.Errorf("%w: %s forwards to %s, not %s (give each target its own listen address)", ErrListenTaken, ep.Listen, h.upstream, ep.Upstream)
}

// Inject implements sdk.Fault: the delay is in effect when it returns.
func (f *Fault) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	params, probs := parse(req.Params)
	probs = append(checkTarget(req.Target), probs...)
	if len(probs) > 0 {
		return "", fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	}
	ep := req.Target.Endpoint
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.proxies[ep.Listen]
	if !ok {
		// Not prepared: the fault stands its own proxy and takes it down
		// with the revert.
		p, err := ListenOptions(ep.Listen, ep.Upstream, Options{Limits: params.Limits, Guard: sdk.Guard(ctx)})
		if err != nil {
			return "", startProxyError(ep.Listen, err)
		}
		h = &held{proxy: p, listen: ep.Listen, upstream: ep.Upstream, owned: true}
		f.proxies[ep.Listen] = h
	} else if err := sameUpstream(h, ep); err != nil {
		return "", err
	}
	h.proxy.SetLimits(params.Limits)
	h.proxy.SetDelay(params.Delay, params.Jitter)
	f.seq++
	handle := fmt.Sprintf("delay:%s:%d", ep.Listen, f.seq)
	f.faults[handle] = h
	return handle, nil
}

// Revert implements sdk.Fault. A handle the plugin does not hold (reverted
// already, or held by a plugin process that is gone, and its proxy with it)
// needs nothing done.
func (f *Fault) Revert(_ context.Context, handle string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if listen, ok := strings.CutPrefix(handle, "proxy:"); ok {
		h, ok := f.proxies[listen]
		if !ok {
			return false, nil
		}
		delete(f.proxies, listen)
		for fh, fv := range f.faults {
			if fv == h {
				delete(f.faults, fh)
			}
		}
		return true, h.proxy.Close()
	}
	h, ok := f.faults[handle]
	if !ok {
		return false, nil
	}
	delete(f.faults, handle)
	h.proxy.SetDelay(0, 0)
	if h.owned {
		delete(f.proxies, h.listen)
		return true, h.proxy.Close()
	}
	return true, nil
}

// Status implements sdk.StatusReporter.
func (f *Fault) Status(_ context.Context, handle string) (sdk.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if listen, ok := strings.CutPrefix(handle, "proxy:"); ok {
		_, active := f.proxies[listen]
		return sdk.Status{Active: active, Detail: "pass-through proxy on " + listen}, nil
	}
	h, ok := f.faults[handle]
	if !ok {
		return sdk.Status{}, nil
	}
	d, j := h.proxy.Delay()
	return sdk.Status{Active: true, Detail: fmt.Sprintf("delay %s jitter %s on %s", d, j, h.proxy.Addr())}, nil
}

// startProxyError says why the proxy could not listen. An address another
// process holds is the environment saying no, not a broken plugin: the run
// is refused, and nothing was touched.
func startProxyError(listen string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: start proxy on %s: %w", sdk.ErrRefused, listen, err)
	}
	return fmt.Errorf("start proxy on %s: %w", listen, err)
}
