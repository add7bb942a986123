package sdk

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxMessageBytes is the largest message the plugin protocol carries in one
// call: gRPC's default receive limit, which both sides keep. Files are held
// well under it at validation (a fault's `with` is bounded far lower).
const MaxMessageBytes = 4 << 20

// errorDomain and panicReason mark the status a plugin answers after a
// panic, so the host tells it from any other internal error without
// reading the message.
const (
	errorDomain = "chaos-run/plugins/sdk"
	panicReason = "PLUGIN_PANICKED"
)

// panicRevertWait bounds how long a handler that panicked waits for the
// reverts it started before it answers. A panic may have left the fault's
// own locks held, so a revert may never finish; the answer must still go
// out (the host's lease and deadlines take over from there).
const panicRevertWait = revertTimeout

// recoverRPC is deferred by every RPC of Server: a panic in the plugin's
// code becomes an answer instead of the end of the process (which would
// take every fault in it down unreverted, and give the host only "plugin
// exited"). It reverts everything the plugin holds, marks the server
// broken, and sets *errp to a status the host turns into ErrPluginPanicked.
//
// It must be deferred directly (`defer s.recoverRPC(op, &err)`): recover
// only works in the deferred function itself.
func (s *Server) recoverRPC(op string, errp *error) {
	v := recover()
	if v == nil {
		return
	}
	done := s.panicked(op, v, debug.Stack())
	t := time.NewTimer(panicRevertWait)
	defer t.Stop()
	outcome := "everything it held was reverted"
	select {
	case <-done:
		if err := s.panicRevertErr(); err != nil {
			outcome = "reverting what it held failed: " + err.Error()
		}
	case <-t.C:
		outcome = fmt.Sprintf("reverting what it held did not finish within %s", panicRevertWait)
	}
	*errp = panicStatus(fmt.Sprintf("%s: %v; %s", op, v, outcome))
}

// panicked records the first panic, logs it with its stack to the plugin's
// stderr (the host's plugin log), and starts reverting everything held in a
// goroutine the server owns: the panicking goroutine may be one that a
// revert waits for (a proxy's connection), so it must not revert itself.
// The returned channel is closed when that revert is done.
func (s *Server) panicked(where string, v any, stack []byte) <-chan struct{} {
	fmt.Fprintf(os.Stderr, "chaos plugin: panic in %s: %v\n%s", where, v, stack)
	s.mu.Lock()
	if s.panicMsg == "" {
		s.panicMsg = fmt.Sprintf("%s: %v", where, v)
	}
	if s.panicDone == nil {
		s.panicDone = make(chan struct{})
		s.reverts.Go(func() {
			defer close(s.panicDone)
			ctx, cancel := context.WithTimeout(s.base, revertTimeout)
			defer cancel()
			err := s.revertAll(ctx)
			s.mu.Lock()
			s.panicErr = err
			s.mu.Unlock()
		})
	}
	done := s.panicDone
	s.mu.Unlock()
	return done
}

func (s *Server) panicRevertErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.panicErr
}

// brokenErr is the answer to a request that would make the plugin hold
// something new, once it has panicked: its state can no longer be trusted.
func (s *Server) brokenErr() error {
	s.mu.Lock()
	msg := s.panicMsg
	s.mu.Unlock()
	if msg == "" {
		return nil
	}
	return panicStatus("earlier, in " + msg + "; it holds nothing and takes no new faults")
}

// panicStatus is the status a plugin answers after a panic.
func panicStatus(msg string) error {
	st := status.New(codes.Internal, ErrPluginPanicked.Error()+": "+msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: panicReason, Domain: errorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// isPanicStatus reports whether st is the answer of a plugin that panicked.
func isPanicStatus(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain && info.GetReason() == panicReason {
			return true
		}
	}
	return false
}

// statusError turns a gRPC status that the host has no other word for into
// an error: a plugin's panic is ErrPluginPanicked, a message over the
// protocol's limit is ErrMessageTooLarge, anything else the plugin's
// message as it is.
func statusError(op string, st *status.Status) error {
	switch {
	case isPanicStatus(st):
		msg := st.Message()
		if len(msg) > len(ErrPluginPanicked.Error())+2 {
			msg = msg[len(ErrPluginPanicked.Error())+2:]
		}
		return fmt.Errorf("%s: %w: %s", op, ErrPluginPanicked, msg)
	case st.Code() == codes.ResourceExhausted:
		return fmt.Errorf("%s: %w (the protocol carries at most %d MiB in one call; make the fault's `with` smaller): %s",
			op, ErrMessageTooLarge, MaxMessageBytes>>20, st.Message())
	default:
		return fmt.Errorf("%s: %s", op, st.Message())
	}
}

// panicHookKey carries, in the context of Prepare and Inject, what Guard
// reports a panic to.
type panicHookKey struct{}

// Guard returns a function to defer first in every goroutine a fault starts
// from Prepare or Inject (a proxy's accept loop, a stress worker):
//
//	guard := sdk.Guard(ctx) // in Inject
//	go func() { defer guard(); ... }()
//
// A panic in that goroutine is then recovered and handled as a panicking
// handler is: everything the plugin holds is reverted, and the host learns
// at its next renewal (ErrPluginPanicked), well within the lease.
//
// What the SDK cannot do: it cannot recover a panic in a goroutine that does
// not defer a guard (Go has no way to catch another goroutine's panic), so
// such a panic still ends the process; the host sees ErrPluginExited, and
// faults held outside the process (a kernel rule) wait for `chaos recover`.
// Outside a served plugin (a unit test calling the fault directly) the guard
// does nothing and a panic stays a panic.
func Guard(ctx context.Context) func() {
	hook, _ := ctx.Value(panicHookKey{}).(func(any, []byte))
	if hook == nil {
		return func() {}
	}
	return func() {
		if v := recover(); v != nil {
			hook(v, debug.Stack())
		}
	}
}

// withPanicHook gives ctx the hook Guard reports to.
func (s *Server) withPanicHook(ctx context.Context) context.Context {
	return context.WithValue(ctx, panicHookKey{}, func(v any, stack []byte) {
		s.panicked("a goroutine of the fault", v, stack)
	})
}
