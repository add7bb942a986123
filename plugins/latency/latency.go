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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.1.0"

// paramsSchema is the JSON Schema of the `with` parameters. The bounds in
// it are the ones parse enforces (limits.go holds both), so an editor, `chaos
// validate` and the plugin say the same. Durations are strings, which JSON
// Schema cannot compare: their bounds are stated in x-minimum/x-maximum
// (annotations an editor shows and ignores) and checked by the plugin.
func paramsSchema() string {
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["delay"],
  "properties": {
    "mode":   {"enum": ["proxy"], "default": "proxy", "description": "proxy: a TCP proxy from the target's listen address to its upstream"},
    "delay":  {"type": "string", "pattern": %[1]q, "x-minimum": "1ns", "x-maximum": %[2]q, "description": "delay added to every chunk in both directions, more than 0 and at most %[2]s, e.g. 200ms"},
    "jitter": {"type": "string", "pattern": %[1]q, "x-minimum": "0s", "x-maximum": %[2]q, "description": "uniform jitter around the delay, at most the delay (and %[2]s), e.g. 10ms"},
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

// parse decodes and checks the parameters, returning every problem.
func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	p := Params{Mode: "proxy", Limits: DefaultLimits()}
	var probs []sdk.ParamProblem
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if len(raw) > 0 {
		if err := dec.Decode(&m); err != nil {
			return p, []sdk.ParamProblem{{Param: "with", Message: "parameters must be a mapping: " + err.Error()}}
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := map[string]bool{}
	problem := func(k, msg string) {
		bad[k] = true
		probs = append(probs, sdk.ParamProblem{Param: k, Message: msg})
	}
	for _, k := range keys {
		v := m[k]
		switch k {
		case "mode":
			s, _ := v.(string)
			if s != "proxy" {
				problem(k, fmt.Sprintf("unknown mode %v (allowed: proxy)", v))
			}
		case "delay", "jitter":
			d, err := duration(v)
			if err != nil {
				problem(k, err.Error())
				continue
			}
			if k == "delay" {
				p.Delay = d
			} else {
				p.Jitter = d
			}
		case "maxConnections", "maxBytesPerConnection", "maxBytesInFlight":
			lo, hi := intBounds(k)
			n, err := boundedInt(v, lo, hi)
			if err != nil {
				problem(k, k+" "+err.Error())
				continue
			}
			switch k {
			case "maxConnections":
				p.Limits.Connections = int(n)
			case "maxBytesPerConnection":
				p.Limits.BytesPerConnection = n
			default:
				p.Limits.BytesInFlight = n
			}
		default:
			problem(k, fmt.Sprintf("unknown parameter %q (allowed: delay, jitter, maxBytesInFlight, maxBytesPerConnection, maxConnections, mode)", k))
		}
	}
	_, hasDelay := m["delay"]
	switch {
	case !hasDelay:
		probs = append(probs, sdk.ParamProblem{Param: "delay", Message: "delay is required, e.g. delay: 200ms"})
	case bad["delay"]:
	case p.Delay <= 0:
		problem("delay", "delay must be more than zero")
	case p.Delay > MaxDelay:
		problem("delay", fmt.Sprintf("delay %s is more than the most the plugin allows, %s (a longer delay is an outage: stop the upstream instead)", shortDuration(p.Delay), shortDuration(MaxDelay)))
	}
	switch {
	case bad["jitter"]:
	case p.Jitter < 0:
		problem("jitter", "jitter must not be negative")
	case p.Jitter > MaxDelay:
		problem("jitter", fmt.Sprintf("jitter %s is more than the most the plugin allows, %s", shortDuration(p.Jitter), shortDuration(MaxDelay)))
	case hasDelay && !bad["delay"] && p.Jitter > p.Delay:
		problem("jitter", fmt.Sprintf("jitter %s is more than the delay %s: the delay would be cut at zero, no longer uniform around it", shortDuration(p.Jitter), shortDuration(p.Delay)))
	}
	if !bad["maxBytesPerConnection"] && !bad["maxBytesInFlight"] && p.Limits.BytesInFlight < p.Limits.BytesPerConnection {
		problem("maxBytesInFlight", fmt.Sprintf("maxBytesInFlight %d is less than maxBytesPerConnection %d: one connection could never fill its share", p.Limits.BytesInFlight, p.Limits.BytesPerConnection))
	}
	return p, probs
}

// boundedInt reads a whole number in [lo, hi].
func boundedInt(v any, lo, hi int64) (int64, error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("must be a whole number, got %v", v)
	}
	n, err := num.Int64()
	if err != nil {
		return 0, fmt.Errorf("must be a whole number, got %s", num)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range: from %d to %d", n, lo, hi)
	}
	return n, nil
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

func duration(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%v is not a duration (use a number with a unit, e.g. 200ms)", v)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use a number with a unit, e.g. 200ms)", s)
	}
	return d, nil
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
	// Only the limits matter to a pass-through proxy; the delay is the
	// fault's business.
	params, probs := parse(req.Params)
	for _, pp := range probs {
		if strings.HasPrefix(pp.Param, "max") {
			return "", fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, pp.Param, pp.Message)
		}
	}
	ep := req.Target.Endpoint
	handle := sdk.PreparedPrefix + "proxy:" + ep.Listen
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
	if listen, ok := strings.CutPrefix(handle, sdk.PreparedPrefix+"proxy:"); ok {
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
	if listen, ok := strings.CutPrefix(handle, sdk.PreparedPrefix+"proxy:"); ok {
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
