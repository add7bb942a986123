package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	faultpb "github.com/chaos-run/chaos/plugins/sdk/proto"
)

// grpcPlugin is the go-plugin glue: on the plugin side it registers the
// server adapter, on the host side it builds the client adapter.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// server is set on the plugin side only.
	server *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	faultpb.RegisterFaultServer(s, p.server)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{rpc: faultpb.NewFaultClient(c)}, nil
}

// server adapts a Fault to the gRPC service. It remembers every handle that
// is in effect, so that the plugin can revert them all when its host goes
// away without saying so.
type server struct {
	faultpb.UnimplementedFaultServer
	fault Fault

	mu     sync.Mutex
	active map[string]struct{}
}

func newServer(f Fault) *server {
	return &server{fault: f, active: map[string]struct{}{}}
}

func (s *server) Describe(context.Context, *faultpb.DescribeRequest) (*faultpb.DescribeResponse, error) {
	d := s.fault.Describe()
	_, canPrepare := s.fault.(Preparer)
	return &faultpb.DescribeResponse{
		Name:         d.Name,
		Version:      d.Version,
		Summary:      d.Summary,
		ParamsSchema: d.ParamsSchema,
		TargetKinds:  d.TargetKinds,
		CanPrepare:   canPrepare,
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

func (s *server) Validate(ctx context.Context, req *faultpb.FaultRequest) (*faultpb.ValidateResponse, error) {
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

func (s *server) Prepare(ctx context.Context, req *faultpb.FaultRequest) (*faultpb.HandleResponse, error) {
	p, ok := s.fault.(Preparer)
	if !ok {
		return &faultpb.HandleResponse{}, nil
	}
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	h, err := p.Prepare(ctx, Request{Target: t, Params: req.GetParams()})
	if err != nil {
		return nil, toStatus(err)
	}
	s.track(h, true)
	return &faultpb.HandleResponse{Handle: h}, nil
}

func (s *server) Inject(ctx context.Context, req *faultpb.InjectRequest) (*faultpb.HandleResponse, error) {
	t, err := decodeTarget(req.GetTarget())
	if err != nil {
		return nil, err
	}
	h, err := s.fault.Inject(ctx, Request{RunID: req.GetRunId(), Target: t, Params: req.GetParams(), Prepared: req.GetPrepared()})
	if err != nil {
		return nil, toStatus(err)
	}
	s.track(h, true)
	return &faultpb.HandleResponse{Handle: h}, nil
}

func (s *server) Revert(ctx context.Context, req *faultpb.HandleRequest) (*faultpb.RevertResponse, error) {
	was, err := s.fault.Revert(ctx, req.GetHandle())
	if err != nil {
		return nil, toStatus(err)
	}
	s.track(req.GetHandle(), false)
	return &faultpb.RevertResponse{WasActive: was}, nil
}

func (s *server) Status(ctx context.Context, req *faultpb.HandleRequest) (*faultpb.StatusResponse, error) {
	if r, ok := s.fault.(StatusReporter); ok {
		st, err := r.Status(ctx, req.GetHandle())
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

func (s *server) track(handle string, active bool) {
	if handle == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if active {
		s.active[handle] = struct{}{}
	} else {
		delete(s.active, handle)
	}
}

// revertAll reverts every handle still in effect, faults before prepared
// targets (a handle that Inject returned depends on the prepared one), and
// returns the first error. It is what a plugin does when its host is gone.
func (s *server) revertAll(ctx context.Context) error {
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
			if _, err := s.fault.Revert(ctx, h); err != nil && first == nil {
				first = fmt.Errorf("revert %s: %w", h, err)
			}
			s.track(h, false)
		}
	}
	return first
}

// PreparedPrefix starts every handle that Prepare returns, so that a plugin
// that has lost its memory (recover after a crash) can still tell the two
// apart.
const PreparedPrefix = "prepared:"

func isPreparedHandle(h string) bool {
	return len(h) >= len(PreparedPrefix) && h[:len(PreparedPrefix)] == PreparedPrefix
}

// toStatus keeps our sentinel errors recognisable across the wire.
func toStatus(err error) error {
	switch {
	case errors.Is(err, ErrUnknownHandle):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}
