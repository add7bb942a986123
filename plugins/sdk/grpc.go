package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chaos-run/chaos/internal/clock"
	faultpb "github.com/chaos-run/chaos/plugins/sdk/proto"
)

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// server adapter, on the host side it builds the client adapter.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// server is set on the plugin side only.
	server *Server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	faultpb.RegisterFaultServer(s, p.server)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{rpc: faultpb.NewFaultClient(c)}, nil
}

// Server serves one Fault to a host: the gRPC adapter plus the promises a
// plugin makes whatever the fault is. It remembers every handle in effect
// with its lease, reverts a handle whose lease runs out, and reverts them
// all when its host goes away without saying so.
type Server struct {
	faultpb.UnimplementedFaultServer
	fault Fault
	// base is the context lease reverts run under: never cancelled by the
	// host going away, since that is when they matter most.
	base context.Context
	// clock times the leases: the real clock, or a test's fake one.
	clock clock.Clock

	mu     sync.Mutex
	active map[string]time.Time // handle → lease deadline; zero: no lease
	// ids maps the id of each injection in effect to its handle, and
	// idOf the other way, so Revert can take either.
	ids    map[string]string
	idOf   map[string]string
	wake   chan struct{} // a lease changed: the lease loop recomputes
	stop   chan struct{}
	done   chan struct{}
	closed bool

	// After a panic (see panic.go): what panicked, the revert it started
	// (closed when done) and that revert's error. A server that panicked
	// takes no new faults.
	panicMsg  string
	panicDone chan struct{}
	panicErr  error
	reverts   sync.WaitGroup // reverts started by a panic
}

// NewServer returns a server for f and starts its lease keeper. ctx is the
// plugin's root context; Close must be called to stop the keeper.
func NewServer(ctx context.Context, f Fault) *Server {
	return NewServerClock(ctx, f, nil)
}

// NewServerClock is NewServer with the clock the leases run on; nil is the
// real clock. Tests of lease expiry pass a clock.Fake.
func NewServerClock(ctx context.Context, f Fault, c clock.Clock) *Server {
	s := &Server{
		fault:  f,
		base:   context.WithoutCancel(ctx),
		clock:  clock.Or(c),
		active: map[string]time.Time{},
		ids:    map[string]string{},
		idOf:   map[string]string{},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go s.keepLeases()
	return s
}

// PluginMap is the go-plugin plugin set that serves s.
func (s *Server) PluginMap() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{server: s}}
}

// Close stops the lease keeper and reverts every handle still in effect.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	s.reverts.Wait()
	return s.revertAll(ctx)
}

// keepLeases reverts handles whose lease ran out. It sleeps until the
// earliest deadline, or until a lease changes.
func (s *Server) keepLeases() {
	defer close(s.done)
	for {
		s.mu.Lock()
		var next time.Time
		for _, d := range s.active {
			if !d.IsZero() && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
		s.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(s.clock.Now()), 0)
		}
		timer := s.clock.NewTimer(wait)
		select {
		case <-s.stop:
			timer.Stop()
			return
		case <-s.wake:
			timer.Stop()
			continue
		case <-timer.C():
		}
		s.mu.Lock()
		var expired []string
		now := s.clock.Now()
		for h, d := range s.active {
			if !d.IsZero() && !now.Before(d) {
				expired = append(expired, h)
				delete(s.active, h)
			}
		}
		s.mu.Unlock()
		for _, h := range expired {
			// The host stopped renewing: it is gone or hung. Revert as if
			// it had asked; there is nobody to tell if this fails.
			ctx, cancel := context.WithTimeout(s.base, revertTimeout)
			_, _ = s.safeRevert(ctx, h)
			cancel()
			s.untrack(h)
		}
	}
}

func (s *Server) Describe(context.Context, *faultpb.DescribeRequest) (_ *faultpb.DescribeResponse, err error) {
	defer s.recoverRPC("describe", &err)
	d := s.fault.Describe()
	_, canPrepare := s.fault.(Preparer)
	_, canResolve := s.fault.(Resolver)
	_, canRevertByID := s.fault.(RevertByID)
	return &faultpb.DescribeResponse{
		Name:          d.Name,
		Version:       d.Version,
		Summary:       d.Summary,
		ParamsSchema:  d.ParamsSchema,
		TargetKinds:   d.TargetKinds,
		CanPrepare:    canPrepare,
		CanResolve:    canResolve,
		CanRevertById: canRevertByID,
	}, nil
}

func decodeTarget(raw []byte) (Target, error) {
	var t Target
	if len(raw) == 0 {
		return t, status.Error(codes.InvalidArgument, "request has no target")
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, status.Errorf(codes.InvalidArgument, "decode target: %v", err)
	}
	return t, nil
}

func (s *Server) Validate(ctx context.Context, req *faultpb.FaultRequest) (_ *faultpb.ValidateResponse, err error) {
	defer s.recoverRPC("validate", &err)
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	probs := s.fault.Validate(ctx, Request{Target: t, Params: req.GetParams()})
	resp := &faultpb.ValidateResponse{}
	for _, p := range probs {
		resp.Problems = append(resp.Problems, &faultpb.ParamProblem{Param: p.Param, Message: p.Message})
	}
	return resp, nil
}

// Resolve answers which concrete things a target means now: the plugin's
// own answer when it is a Resolver, else the target as one thing.
func (s *Server) Resolve(ctx context.Context, req *faultpb.FaultRequest) (_ *faultpb.ResolveResponse, err error) {
	defer s.recoverRPC("resolve", &err)
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	res := DefaultResolution(t)
	if r, ok := s.fault.(Resolver); ok {
		if res, err = r.Resolve(ctx, Request{Target: t, Params: req.GetParams()}); err != nil {
			return nil, toStatus(err)
		}
		if len(res.Things) == 0 {
			return nil, status.Errorf(codes.Unknown, "target %s means nothing now (the plugin resolved it to no things)", t.Name)
		}
	}
	resp := &faultpb.ResolveResponse{Total: int64(res.Total)}
	for _, th := range res.Things {
		if th.Key == "" {
			return nil, status.Errorf(codes.Internal, "the plugin resolved target %s to a thing without a key (%q)", t.Name, th.Name)
		}
		resp.Things = append(resp.Things, &faultpb.Resolved{Key: th.Key, Kind: th.Kind, Name: th.Name, Covers: th.Covers})
	}
	return resp, nil
}

func (s *Server) Prepare(ctx context.Context, req *faultpb.FaultRequest) (_ *faultpb.HandleResponse, err error) {
	defer s.recoverRPC("prepare", &err)
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
	p, ok := s.fault.(Preparer)
	if !ok {
		return &faultpb.HandleResponse{}, nil
	}
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	h, err := p.Prepare(s.withPanicHook(ctx), Request{ID: req.GetId(), Target: t, Params: req.GetParams(), LeaseTTL: msTTL(req.GetLeaseTtlMs())})
	if err != nil {
		return nil, toStatus(err)
	}
	if h == "" {
		return &faultpb.HandleResponse{}, nil
	}
	// The SDK marks prepared handles, so that it can tell them from
	// faults (faults are reverted first) without the plugin's help.
	h = PreparedPrefix + h
	if err := s.hold(req.GetId(), h, msTTL(req.GetLeaseTtlMs())); err != nil {
		return nil, err
	}
	return &faultpb.HandleResponse{Handle: h}, nil
}

func (s *Server) Inject(ctx context.Context, req *faultpb.InjectRequest) (_ *faultpb.HandleResponse, err error) {
	defer s.recoverRPC("inject", &err)
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	prepared, _ := strings.CutPrefix(req.GetPrepared(), PreparedPrefix)
	h, err := s.fault.Inject(s.withPanicHook(ctx), Request{RunID: req.GetRunId(), ID: req.GetId(), Target: t, Params: req.GetParams(), Prepared: prepared, LeaseTTL: msTTL(req.GetLeaseTtlMs())})
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.hold(req.GetId(), h, msTTL(req.GetLeaseTtlMs())); err != nil {
		return nil, err
	}
	return &faultpb.HandleResponse{Handle: h}, nil
}

// Revert ends what a handle or an injection id names. An id this server
// holds is reverted by its handle; an id it does not hold goes to the
// plugin's RevertByID when it has the ability, and is otherwise nothing
// held (a fault that lived in a process that is gone went with it).
func (s *Server) Revert(ctx context.Context, req *faultpb.RevertRequest) (_ *faultpb.RevertResponse, err error) {
	defer s.recoverRPC("revert", &err)
	h, id := req.GetHandle(), req.GetId()
	if h == "" && id == "" {
		return nil, status.Error(codes.InvalidArgument, "revert names neither a handle nor an id")
	}
	s.mu.Lock()
	known, live := s.ids[id]
	s.mu.Unlock()
	switch {
	case id != "" && live && h != "" && known != h:
		return nil, toStatus(fmt.Errorf("%w: id %s is handle %s here, not %s", ErrHandleMismatch, id, known, h))
	case h == "" && live:
		h = known
	case h == "":
		rb, ok := s.fault.(RevertByID)
		if !ok {
			return &faultpb.RevertResponse{}, nil
		}
		was, err := rb.RevertByID(ctx, id)
		if err != nil {
			return nil, toStatus(err)
		}
		return &faultpb.RevertResponse{WasActive: was}, nil
	}
	was, err := s.fault.Revert(ctx, pluginHandle(h))
	if err != nil {
		return nil, toStatus(err)
	}
	s.untrack(h)
	return &faultpb.RevertResponse{WasActive: was}, nil
}

func (s *Server) Status(ctx context.Context, req *faultpb.HandleRequest) (_ *faultpb.StatusResponse, err error) {
	defer s.recoverRPC("status", &err)
	if r, ok := s.fault.(StatusReporter); ok {
		st, err := r.Status(ctx, pluginHandle(req.GetHandle()))
		if err != nil {
			return nil, toStatus(err)
		}
		return &faultpb.StatusResponse{Active: st.Active, Detail: st.Detail}, nil
	}
	s.mu.Lock()
	_, active := s.active[req.GetHandle()]
	s.mu.Unlock()
	return &faultpb.StatusResponse{Active: active}, nil
}

// Renew extends a handle's lease. A handle the plugin no longer holds
// (its lease ran out, or it was reverted) is NOT_FOUND: the host must not
// believe a fault is live when it is not.
//
// A server that panicked answers ErrPluginPanicked instead: that is how the
// host learns of a panic in a goroutine of the fault, within a renewal.
func (s *Server) Renew(_ context.Context, req *faultpb.RenewRequest) (_ *faultpb.RenewResponse, err error) {
	defer s.recoverRPC("renew", &err)
	if err := s.brokenErr(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := s.active[req.GetHandle()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "%v: %s (its lease ran out or it was reverted)", ErrUnknownHandle, req.GetHandle())
	}
	s.track(req.GetHandle(), msTTL(req.GetLeaseTtlMs()))
	return &faultpb.RenewResponse{}, nil
}

func msTTL(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// track records a handle as in effect, with a lease of ttl (0: none).
func (s *Server) track(handle string, ttl time.Duration) {
	if handle == "" {
		return
	}
	var deadline time.Time
	if ttl > 0 {
		deadline = s.clock.Now().Add(ttl)
	}
	s.mu.Lock()
	s.active[handle] = deadline
	s.mu.Unlock()
	s.poke()
}

// hold tracks a handle just made (under its lease ttl, and as the
// injection id, if any). A goroutine of the plugin may have panicked while
// it was being made (one the fault itself started, say): the revert that
// panic started took what was tracked then, perhaps not h. Tracked first,
// looked at second, so that h is reverted either here, with the panic as
// the answer, or by that revert.
func (s *Server) hold(id, h string, ttl time.Duration) error {
	s.trackID(id, h)
	s.track(h, ttl)
	err := s.brokenErr()
	if err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.base, revertTimeout)
	defer cancel()
	if _, rerr := s.safeRevert(ctx, h); rerr != nil {
		err = fmt.Errorf("%w; reverting what it was making failed: %w", err, rerr)
	}
	s.untrack(h)
	return err
}

// trackID remembers which injection id a handle is.
func (s *Server) trackID(id, handle string) {
	if id == "" || handle == "" {
		return
	}
	s.mu.Lock()
	s.ids[id] = handle
	s.idOf[handle] = id
	s.mu.Unlock()
}

func (s *Server) untrack(handle string) {
	s.mu.Lock()
	delete(s.active, handle)
	if id, ok := s.idOf[handle]; ok {
		delete(s.idOf, handle)
		delete(s.ids, id)
	}
	s.mu.Unlock()
	s.poke()
}

// poke wakes the lease keeper without ever blocking.
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// revertAll reverts every handle still in effect, faults before prepared
// targets (a handle that Inject returned depends on the prepared one), and
// returns the first error. It is what a plugin does when its host is gone.
func (s *Server) revertAll(ctx context.Context) error {
	s.mu.Lock()
	handles := make([]string, 0, len(s.active))
	for h := range s.active {
		handles = append(handles, h)
	}
	s.mu.Unlock()
	var first error
	// Two passes: a prepared handle's revert also ends the faults that ride
	// on it, but reverting the faults first keeps each revert's report true.
	for _, pass := range []bool{false, true} {
		for _, h := range handles {
			if isPreparedHandle(h) != pass {
				continue
			}
			if _, err := s.safeRevert(ctx, h); err != nil && first == nil {
				first = fmt.Errorf("revert %s: %w", h, err)
			}
			s.untrack(h)
		}
	}
	return first
}

// safeRevert is a revert the SDK makes on its own (a lease, a goodbye, a
// panic elsewhere): a panic in it is reported as an error, never allowed to
// end the process that still holds other faults.
func (s *Server) safeRevert(ctx context.Context, h string) (was bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			fmt.Fprintf(os.Stderr, "chaos plugin: panic reverting %s: %v\n%s", h, v, debug.Stack())
			err = fmt.Errorf("%w: revert %s: %v", ErrPluginPanicked, h, v)
		}
	}()
	return s.fault.Revert(ctx, pluginHandle(h))
}

// PreparedPrefix starts every handle of a preparation on the wire. The SDK
// adds it to what the plugin's Prepare returns and takes it off before the
// plugin sees a handle again, so the host (and recover, from a ledger
// entry) can tell preparations from faults, and plugins never see it.
const PreparedPrefix = "prepared:"

func isPreparedHandle(h string) bool { return strings.HasPrefix(h, PreparedPrefix) }

// pluginHandle is a wire handle as the plugin returned it.
func pluginHandle(h string) string {
	p, _ := strings.CutPrefix(h, PreparedPrefix)
	return p
}

// toStatus keeps our sentinel errors recognisable across the wire.
func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrUnknownHandle):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrHandleMismatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}
