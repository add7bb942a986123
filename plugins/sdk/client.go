package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	faultpb "github.com/chaos-run/chaos/plugins/sdk/proto"
)

// Client is the host's view of one plugin: the Fault interface, over gRPC,
// with every method taking a context and returning an error, because the
// plugin is another process that may be gone.
type Client struct {
	rpc faultpb.FaultClient
	// exited reports whether the plugin process has ended. It is nil for a
	// plugin served in the same process (tests).
	exited func() bool
}

// DefaultCallTimeout bounds a call to a plugin whose context has no
// deadline of its own: no call waits for ever on a plugin that stopped
// answering.
const DefaultCallTimeout = 30 * time.Second

// bounded gives ctx the default deadline when it has none.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultCallTimeout)
}

// Describe asks the plugin what it is.
func (c *Client) Describe(ctx context.Context) (Description, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	r, err := c.rpc.Describe(ctx, &faultpb.DescribeRequest{})
	if err != nil {
		return Description{}, c.wrap("describe", err)
	}
	return Description{
		Name:          r.GetName(),
		Version:       r.GetVersion(),
		Summary:       r.GetSummary(),
		ParamsSchema:  r.GetParamsSchema(),
		TargetKinds:   r.GetTargetKinds(),
		CanPrepare:    r.GetCanPrepare(),
		CanResolve:    r.GetCanResolve(),
		CanRevertByID: r.GetCanRevertById(),
	}, nil
}

// Validate asks the plugin to check a request. A nil slice means it is fine.
func (c *Client) Validate(ctx context.Context, req Request) ([]ParamProblem, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	t, err := json.Marshal(req.Target)
	if err != nil {
		return nil, fmt.Errorf("encode target: %w", err)
	}
	r, err := c.rpc.Validate(ctx, &faultpb.FaultRequest{Target: t, Params: req.Params})
	if err != nil {
		return nil, c.wrap("validate", err)
	}
	var probs []ParamProblem
	for _, p := range r.GetProblems() {
		probs = append(probs, ParamProblem{Param: p.GetParam(), Message: p.GetMessage()})
	}
	return probs, nil
}

// Prepare readies a target; it returns "" when the plugin has nothing to
// prepare.
func (c *Client) Prepare(ctx context.Context, req Request) (string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	t, err := json.Marshal(req.Target)
	if err != nil {
		return "", fmt.Errorf("encode target: %w", err)
	}
	r, err := c.rpc.Prepare(ctx, &faultpb.FaultRequest{Target: t, Params: req.Params, LeaseTtlMs: req.LeaseTTL.Milliseconds(), Id: req.ID})
	if err != nil {
		return "", c.wrap("prepare", err)
	}
	return r.GetHandle(), nil
}

// Inject starts a fault and returns its handle.
func (c *Client) Inject(ctx context.Context, req Request) (string, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	t, err := json.Marshal(req.Target)
	if err != nil {
		return "", fmt.Errorf("encode target: %w", err)
	}
	r, err := c.rpc.Inject(ctx, &faultpb.InjectRequest{Target: t, Params: req.Params, Prepared: req.Prepared, RunId: req.RunID, LeaseTtlMs: req.LeaseTTL.Milliseconds(), Id: req.ID})
	if err != nil {
		return "", c.wrap("inject", err)
	}
	return r.GetHandle(), nil
}

// Revert ends what a handle names.
func (c *Client) Revert(ctx context.Context, handle string) (bool, error) {
	return c.RevertBy(ctx, handle, "")
}

// RevertBy ends what a handle or an injection id names; give the id
// whenever it is known, and the handle when one was recorded. A plugin
// process that holds nothing for the id (and cannot revert by id alone)
// answers false, nil: its faults lived in a process that is gone.
// ErrHandleMismatch means the two name different injections.
func (c *Client) RevertBy(ctx context.Context, handle, id string) (bool, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	r, err := c.rpc.Revert(ctx, &faultpb.RevertRequest{Handle: handle, Id: id})
	if err != nil {
		return false, c.wrap("revert", err)
	}
	return r.GetWasActive(), nil
}

// Resolve asks which concrete things a request's target means now. A plugin
// built before the protocol had Resolve is taken to act on the target as one
// thing (DefaultResolution).
func (c *Client) Resolve(ctx context.Context, req Request) (Resolution, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	t, err := json.Marshal(req.Target)
	if err != nil {
		return Resolution{}, fmt.Errorf("encode target: %w", err)
	}
	r, err := c.rpc.Resolve(ctx, &faultpb.FaultRequest{Target: t, Params: req.Params})
	if status.Code(err) == codes.Unimplemented {
		return DefaultResolution(req.Target), nil
	}
	if err != nil {
		return Resolution{}, c.wrap("resolve", err)
	}
	res := Resolution{Total: int(r.GetTotal())}
	for _, th := range r.GetThings() {
		res.Things = append(res.Things, Resolved{Key: th.GetKey(), Kind: th.GetKind(), Name: th.GetName(), Covers: th.GetCovers()})
	}
	return res, nil
}

// Renew extends a handle's lease by ttl from now. ErrUnknownHandle means
// the plugin no longer holds it: its lease ran out and it was reverted.
func (c *Client) Renew(ctx context.Context, handle string, ttl time.Duration) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	if _, err := c.rpc.Renew(ctx, &faultpb.RenewRequest{Handle: handle, LeaseTtlMs: ttl.Milliseconds()}); err != nil {
		return c.wrap("renew", err)
	}
	return nil
}

// Status asks whether what a handle names is in effect.
func (c *Client) Status(ctx context.Context, handle string) (Status, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	r, err := c.rpc.Status(ctx, &faultpb.HandleRequest{Handle: handle})
	if err != nil {
		return Status{}, c.wrap("status", err)
	}
	return Status{Active: r.GetActive(), Detail: r.GetDetail()}, nil
}

// wrap turns a gRPC error into ours: a connection that is gone, or a process
// that has exited, is ErrPluginExited whatever the call was, so that the
// engine has one error to look for.
func (c *Client) wrap(op string, err error) error {
	st, _ := status.FromError(err)
	switch {
	case c.exited != nil && c.exited(), st.Code() == codes.Unavailable:
		return fmt.Errorf("%s: %w: %s", op, ErrPluginExited, st.Message())
	case st.Code() == codes.NotFound:
		return fmt.Errorf("%s: %w: %s", op, ErrUnknownHandle, st.Message())
	case st.Code() == codes.FailedPrecondition:
		return fmt.Errorf("%s: %w: %s", op, ErrRefused, strings.TrimPrefix(st.Message(), ErrRefused.Error()+": "))
	case st.Code() == codes.InvalidArgument:
		return fmt.Errorf("%s: %w: %s", op, ErrHandleMismatch, st.Message())
	case st.Code() == codes.Canceled:
		return fmt.Errorf("%s: %w", op, context.Canceled)
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", op, context.DeadlineExceeded)
	default:
		return statusError(op, st)
	}
}
