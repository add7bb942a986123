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
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Version is the plugin's version.
const Version = "0.2.0"

// paramsSchema is the JSON Schema of the `with` parameters, and the one
// source of truth for them: parse checks the parameters against it with
// sdk.DecodeParams, so an editor, `chaos validate` and the plugin say the
// same (limits.go holds the numbers). Durations are strings, which JSON
// Schema cannot compare: they are marked "format": "duration" and their
// bounds stated in x-minimum/x-exclusiveMinimum/x-maximum, which editors show
// and DecodeParams checks. Which parameters belong to which mode is checked
// by hand (checkMode): the messages say it better than a schema's if/then.
func paramsSchema() string {
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "required": ["delay"],
  "properties": {
    "mode":   {"enum": ["proxy", "intercept", "netem"], "default": "proxy", "description": "proxy: a TCP proxy from an endpoint target's listen address to its upstream (clients are pointed at listen); intercept: on a host target, nftables rules redirect traffic to destination into a proxy of the plugin, no client change; netem: on a host target, a netem qdisc on interface (kernels with netem only)"},
    "delay":  {"type": "string", "format": "duration", "pattern": %[1]q, "x-exclusiveMinimum": "0s", "x-maximum": %[2]q, "description": "delay added to every chunk (proxy, intercept) or packet (netem) in each delayed direction, more than 0 and at most %[2]s (a longer delay is an outage: stop the upstream instead), e.g. 200ms"},
    "jitter": {"type": "string", "format": "duration", "pattern": %[1]q, "x-minimum": "0s", "x-maximum": %[2]q, "description": "jitter around the delay, at most the delay (and %[2]s), e.g. 10ms"},
    "distribution": {"enum": ["uniform", "normal"], "default": "uniform", "description": "uniform: delay±jitter, evenly; normal: mean delay, standard deviation jitter, cut at 0 and twice the delay (proxy, intercept)"},
    "direction": {"enum": ["both", "to-upstream", "to-client"], "default": "both", "description": "which way is delayed (proxy, intercept): both adds the delay twice to a round trip"},
    "share": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "default": 100, "description": "percent of connections affected, drawn per connection (proxy, intercept)"},
    "destination": {"type": "string", "pattern": "^([0-9]{1,3}(\\.[0-9]{1,3}){3}|\\[[0-9A-Fa-f:.]+\\]):[0-9]{1,5}$", "description": "intercept: the address (IPv4, or IPv6 in brackets) and port whose traffic is delayed, e.g. 10.0.0.2:8080 or [fd00::2]:8080"},
    "source": {"type": "string", "pattern": "^([0-9]{1,3}(\\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$", "description": "intercept: only traffic from this address, of the destination's family (default: from anywhere)"},
    "namespace": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$", "description": "intercept, netem: the named network namespace (ip netns) where the traffic flows; default the host's"},
    "interface": {"type": "string", "pattern": "^[^/:\\s]{1,15}$", "description": "netem: the interface whose outgoing packets are delayed, e.g. eth0"},
    "correlation": {"type": "number", "minimum": 0, "maximum": 100, "description": "netem: percent correlation of each packet's delay with the previous one's"},
    "loss": {"type": "number", "minimum": 0, "maximum": 100, "description": "netem: percent of packets dropped"},
    "maxConnections":        {"type": "integer", "minimum": %[3]d, "maximum": %[4]d, "default": %[5]d, "description": "client connections the proxy holds at once; more are closed at once and counted"},
    "maxBytesPerConnection": {"type": "integer", "minimum": %[6]d, "maximum": %[7]d, "default": %[8]d, "description": "bytes one connection may hold in flight (read, not yet delivered); past it the proxy stops reading that side"},
    "maxBytesInFlight":      {"type": "integer", "minimum": %[6]d, "maximum": %[9]d, "default": %[10]d, "description": "bytes all connections of the proxy together may hold in flight; at least maxBytesPerConnection"}
  }
}`, durationPattern, shortDuration(MaxDelay),
		minConnections, maxConnections, DefaultMaxConnections,
		minBytes, maxBytesPerConnection, DefaultMaxBytesPerConnection,
		maxBytesInFlight, DefaultMaxBytesInFlight)
}

// Modes.
const (
	ModeProxy     = "proxy"
	ModeIntercept = "intercept"
	ModeNetem     = "netem"
)

// Params are the fault's `with` parameters.
type Params struct {
	Mode   string
	Delay  time.Duration
	Jitter time.Duration
	Shape  Shape
	Limits Limits
	// Intercept and netem.
	Destination netip.AddrPort
	Source      netip.Addr
	Namespace   string
	Interface   string
	Correlation float64
	Loss        float64
}

// Fault is the latency plugin. Its zero value is not usable; call New.
type Fault struct {
	mu         sync.Mutex
	proxies    map[string]*held      // by listen address
	faults     map[string]*fault     // by fault handle
	intercepts map[string]*intercept // by fault handle
	seq        int
	// said is what the latest reverted faults did (effect.go), by handle,
	// for the Status the engine asks after a revert; saidOrder bounds it
	// to maxSaid, oldest out first.
	said      map[string]string
	saidOrder []string

	// netem is whether the kernel can add a netem qdisc, found once.
	netemOnce sync.Once
	netemErr  error
}

// held is a proxy the plugin holds, and whether a fault owns it outright
// (injected without Prepare, so the revert closes it too).
type held struct {
	proxy    *Proxy
	listen   string
	upstream string
	owned    bool
}

// fault is a proxy-mode fault: the proxy it delays and the proxy's
// counters when it began.
type fault struct {
	*held
	before Stats
}

// maxSaid bounds the reverted faults whose effect the plugin remembers.
const maxSaid = 256

// New returns a latency plugin holding nothing.
func New() *Fault {
	return &Fault{proxies: map[string]*held{}, faults: map[string]*fault{}, intercepts: map[string]*intercept{}, said: map[string]string{}}
}

// remember keeps what the reverted fault handle did, for Status. f.mu must
// be held.
func (f *Fault) remember(handle string, e effect) {
	if _, ok := f.said[handle]; !ok {
		f.saidOrder = append(f.saidOrder, handle)
	}
	f.said[handle] = e.String()
	if len(f.saidOrder) > maxSaid {
		delete(f.said, f.saidOrder[0])
		f.saidOrder = f.saidOrder[1:]
	}
}

// Describe implements sdk.Fault.
func (f *Fault) Describe() sdk.Description {
	return sdk.Description{
		Name:         "latency",
		Version:      Version,
		Summary:      "adds delay and jitter to TCP traffic: a proxy on an endpoint, nftables interception or netem on the host",
		ParamsSchema: json.RawMessage(paramsSchema()),
		TargetKinds:  []string{sdk.KindEndpoint, sdk.KindHost},
	}
}

// wireParams is the shape of the `with` parameters, decoded by
// sdk.DecodeParams after the schema accepted them; absent fields keep the
// defaults set before decoding.
type wireParams struct {
	Mode                  string        `json:"mode"`
	Delay                 time.Duration `json:"delay"`
	Jitter                time.Duration `json:"jitter"`
	Distribution          string        `json:"distribution"`
	Direction             string        `json:"direction"`
	Share                 float64       `json:"share"`
	Destination           string        `json:"destination"`
	Source                string        `json:"source"`
	Namespace             string        `json:"namespace"`
	Interface             string        `json:"interface"`
	Correlation           *float64      `json:"correlation"`
	Loss                  *float64      `json:"loss"`
	MaxConnections        int           `json:"maxConnections"`
	MaxBytesPerConnection int64         `json:"maxBytesPerConnection"`
	MaxBytesInFlight      int64         `json:"maxBytesInFlight"`
}

// parse decodes the parameters against the schema (every bound the schema
// states is checked there) and checks what a schema cannot say: one
// parameter compared with another, and which belong to the mode.
func parse(raw json.RawMessage) (Params, []sdk.ParamProblem) {
	w := wireParams{Mode: ModeProxy, Distribution: string(Uniform), Direction: string(DirBoth), Share: 100, MaxConnections: DefaultMaxConnections, MaxBytesPerConnection: DefaultMaxBytesPerConnection, MaxBytesInFlight: DefaultMaxBytesInFlight}
	if probs := sdk.DecodeParams(raw, json.RawMessage(paramsSchema()), &w); len(probs) > 0 {
		return Params{Mode: ModeProxy, Limits: DefaultLimits()}, probs
	}
	var given map[string]json.RawMessage
	_ = json.Unmarshal(raw, &given)
	p := Params{
		Mode: w.Mode, Delay: w.Delay, Jitter: w.Jitter,
		Shape:     Shape{Delay: w.Delay, Jitter: w.Jitter, Distribution: Distribution(w.Distribution), Direction: Direction(w.Direction), Share: w.Share / 100},
		Limits:    Limits{Connections: w.MaxConnections, BytesPerConnection: w.MaxBytesPerConnection, BytesInFlight: w.MaxBytesInFlight},
		Namespace: w.Namespace, Interface: w.Interface,
	}
	if w.Correlation != nil {
		p.Correlation = *w.Correlation
	}
	if w.Loss != nil {
		p.Loss = *w.Loss
	}
	var probs []sdk.ParamProblem
	add := func(param, format string, args ...any) {
		probs = append(probs, sdk.ParamProblem{Param: "with." + param, Message: fmt.Sprintf(format, args...)})
	}
	if p.Jitter > p.Delay {
		add("jitter", "jitter %s is more than the delay %s: the delay would be cut at zero, no longer spread around it", shortDuration(p.Jitter), shortDuration(p.Delay))
	}
	if p.Limits.BytesInFlight < p.Limits.BytesPerConnection {
		add("maxBytesInFlight", "maxBytesInFlight %d is less than maxBytesPerConnection %d: one connection could never fill its share", p.Limits.BytesInFlight, p.Limits.BytesPerConnection)
	}
	if w.Destination != "" {
		ap, err := netip.ParseAddrPort(w.Destination)
		if err != nil || ap.Addr().Zone() != "" || ap.Addr().Is4In6() || ap.Port() == 0 {
			add("destination", "destination %s is not an address and a port from 1 to 65535, e.g. 10.0.0.2:8080 or [fd00::2]:8080", w.Destination)
		}
		p.Destination = ap
	}
	if w.Source != "" {
		a, err := netip.ParseAddr(w.Source)
		switch {
		case err != nil || a.Zone() != "" || a.Is4In6():
			add("source", "source %s is not an address, e.g. 10.0.0.1 or fd00::1", w.Source)
		case p.Destination.IsValid() && a.Is4() != p.Destination.Addr().Is4():
			add("source", "source %s is not of the destination %s's family: a connection has both of one family", w.Source, w.Destination)
		}
		p.Source = a
	}
	// Which parameters belong to which mode.
	only := map[string][]string{
		"destination": {ModeIntercept}, "source": {ModeIntercept},
		"namespace": {ModeIntercept, ModeNetem}, "interface": {ModeNetem},
		"correlation": {ModeNetem}, "loss": {ModeNetem},
		"distribution": {ModeProxy, ModeIntercept}, "direction": {ModeProxy, ModeIntercept}, "share": {ModeProxy, ModeIntercept},
		"maxConnections": {ModeProxy, ModeIntercept}, "maxBytesPerConnection": {ModeProxy, ModeIntercept}, "maxBytesInFlight": {ModeProxy, ModeIntercept},
	}
	for _, name := range sortedParamNames(given) {
		modes, ok := only[name]
		if ok && !slices.Contains(modes, p.Mode) {
			add(name, "%s applies to mode %s, not to mode %s", name, strings.Join(modes, " and "), p.Mode)
		}
	}
	switch p.Mode {
	case ModeIntercept:
		if w.Destination == "" {
			add("destination", "mode intercept needs destination: the address and port whose traffic is delayed, e.g. 10.0.0.2:8080 or [fd00::2]:8080")
		}
	case ModeNetem:
		if w.Interface == "" {
			add("interface", "mode netem needs interface: the interface whose outgoing packets are delayed, e.g. eth0")
		}
	}
	return p, probs
}

func sortedParamNames(m map[string]json.RawMessage) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
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

// checkTarget says whether the target's kind fits the mode: proxy mode
// acts on an endpoint (listen, upstream), intercept and netem on the host,
// with the destination or interface in `with` (the file format's targets
// have no field for them).
func checkTarget(t sdk.Target, mode string) []sdk.ParamProblem {
	switch mode {
	case ModeIntercept, ModeNetem:
		if t.Kind != sdk.KindHost {
			return []sdk.ParamProblem{{Param: "target", Message: fmt.Sprintf("latency in mode %s needs a host target (host: {}), with what to delay in with; %s is a %s target", mode, t.Name, t.Kind)}}
		}
		return nil
	}
	if t.Kind != sdk.KindEndpoint || t.Endpoint == nil {
		return []sdk.ParamProblem{{Param: "target", Message: fmt.Sprintf("latency in mode proxy needs an endpoint target, %s is a %s target (mode intercept delays traffic on a host target without a client change)", t.Name, t.Kind)}}
	}
	return nil
}

// Validate implements sdk.Fault.
func (f *Fault) Validate(_ context.Context, req sdk.Request) []sdk.ParamProblem {
	p, probs := parse(req.Params)
	probs = append(checkTarget(req.Target, p.Mode), probs...)
	if len(probs) > 0 {
		return probs
	}
	switch p.Mode {
	case ModeNetem:
		if err := f.netemSupport(); err != nil {
			msg := err.Error()
			if errors.Is(err, ErrNoNetem) {
				msg += "; use mode: intercept, which needs only nftables"
			}
			probs = append(probs, sdk.ParamProblem{Param: "with.mode", Message: msg})
		}
		if p.Shape.Distribution == Normal {
			probs = append(probs, sdk.ParamProblem{Param: "with.distribution", Message: "netem through netlink draws jitter uniformly here; use mode intercept for a normal distribution"})
		}
		if p.Namespace != "" {
			if err := checkNamespace(p.Namespace); err != nil {
				probs = append(probs, sdk.ParamProblem{Param: "with.namespace", Message: err.Error()})
			}
		}
	case ModeIntercept:
		if p.Namespace != "" {
			if err := checkNamespace(p.Namespace); err != nil {
				probs = append(probs, sdk.ParamProblem{Param: "with.namespace", Message: err.Error()})
			}
		}
	}
	return probs
}

// checkNamespace says whether a named network namespace exists.
func checkNamespace(name string) error {
	h, err := openNS(name)
	if err != nil {
		return err
	}
	return h.Close()
}

// netemSupport is netemSupport, found once per plugin process.
func (f *Fault) netemSupport() error {
	f.netemOnce.Do(func() { f.netemErr = netemSupport() })
	return f.netemErr
}

// request parses and checks a request to act on; its problems are
// ErrInvalidParams.
func (f *Fault) request(req sdk.Request) (Params, error) {
	params, probs := parse(req.Params)
	probs = append(checkTarget(req.Target, params.Mode), probs...)
	if len(probs) > 0 {
		return params, fmt.Errorf("%w: %s: %s", sdk.ErrInvalidParams, probs[0].Param, probs[0].Message)
	}
	return params, nil
}

// Prepare implements sdk.Preparer: a pass-through proxy on the target.
func (f *Fault) Prepare(ctx context.Context, req sdk.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// Only the limits matter to a pass-through proxy, but a request the
	// schema refuses is refused whole: Validate said so before.
	params, err := f.request(req)
	if err != nil {
		return "", err
	}
	if params.Mode != ModeProxy {
		// Intercept and netem change nothing until the fault: the path
		// is the same before it. The handle names nothing to undo. What
		// the environment will refuse is found out here, before the
		// steady state is checked, so the run is refused untouched.
		if err := f.canAct(params); err != nil {
			return "", err
		}
		return noneHandle + params.Mode, nil
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

// canAct says, without changing anything, whether intercept or netem can
// act here: the namespace exists, the plugin may read (so also write) the
// namespace's nftables (CAP_NET_ADMIN), the kernel has netem. A no is
// ErrRefused.
func (f *Fault) canAct(p Params) error {
	if p.Mode == ModeNetem {
		if err := f.netemSupport(); errors.Is(err, ErrNoNetem) {
			return fmt.Errorf("%w: %w; use mode: intercept", sdk.ErrRefused, err)
		}
		if err := checkNamespace(p.Namespace); err != nil {
			return fmt.Errorf("%w: %w", sdk.ErrRefused, err)
		}
		return nil
	}
	_, err := hasTable(p.Namespace, tablePrefix+"probe")
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNoNamespace):
		return fmt.Errorf("%w: %w", sdk.ErrRefused, err)
	case errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: %w (intercept writes nftables rules, which needs CAP_NET_ADMIN: run chaos as root)", sdk.ErrRefused, err)
	}
	return err
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
	params, err := f.request(req)
	if err != nil {
		return "", err
	}
	switch params.Mode {
	case ModeIntercept:
		return f.injectIntercept(ctx, req, params)
	case ModeNetem:
		return f.injectNetem(req, params)
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
	h.proxy.SetShape(params.Shape)
	f.seq++
	handle := fmt.Sprintf("delay:%s:%d", ep.Listen, f.seq)
	f.faults[handle] = &fault{held: h, before: h.proxy.Stats()}
	return handle, nil
}

// Revert implements sdk.Fault. A handle the plugin does not hold (reverted
// already, or held by a plugin process that is gone, and its proxy with it)
// needs nothing done.
func (f *Fault) Revert(ctx context.Context, handle string) (bool, error) {
	switch {
	case strings.HasPrefix(handle, noneHandle):
		return false, nil
	case strings.HasPrefix(handle, interceptHandle):
		return f.revertIntercept(handle)
	case strings.HasPrefix(handle, netemHandle):
		return revertNetem(handle)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if listen, ok := strings.CutPrefix(handle, "proxy:"); ok {
		h, ok := f.proxies[listen]
		if !ok {
			return false, nil
		}
		delete(f.proxies, listen)
		for fh, fv := range f.faults {
			if fv.held == h {
				f.remember(fh, effectOf(fv.before, h.proxy.Stats()))
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
	f.remember(handle, effectOf(h.before, h.proxy.Stats()))
	if h.owned {
		delete(f.proxies, h.listen)
		return true, h.proxy.Close()
	}
	return true, nil
}

// Status implements sdk.StatusReporter.
func (f *Fault) Status(_ context.Context, handle string) (sdk.Status, error) {
	switch {
	case strings.HasPrefix(handle, noneHandle):
		return sdk.Status{}, nil
	case strings.HasPrefix(handle, interceptHandle):
		return f.statusIntercept(handle)
	case strings.HasPrefix(handle, netemHandle):
		return statusNetem(handle)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if listen, ok := strings.CutPrefix(handle, "proxy:"); ok {
		_, active := f.proxies[listen]
		return sdk.Status{Active: active, Detail: "pass-through proxy on " + listen}, nil
	}
	h, ok := f.faults[handle]
	if !ok {
		// Reverted (or never held): what it did, if this process saw it.
		return sdk.Status{Detail: f.said[handle]}, nil
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
