package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ErrLeaseLost is the cause a leader's scheduler is stopped with when it
// could not renew its Lease: another replica may be scheduling now.
var ErrLeaseLost = errors.New("lost the leader lease")

// Skip reasons of a replicated scheduler.
const (
	// SkipClaimed: another replica already claimed this fire's instant
	// in the shared state directory (it decided the fire: ran it, runs
	// it, or skipped it), or the claim could not be made.
	SkipClaimed SkipReason = "claimed"
	// SkipLeaseLost: this replica no longer holds the Lease; the fire is
	// the next leader's to decide, unless this replica claimed its
	// instant before (then no replica runs it).
	SkipLeaseLost SkipReason = "lease-lost"
)

// Leader configures leader election on a coordination/v1 Lease.
type Leader struct {
	Config    *rest.Config
	Namespace string
	Name      string
	// Identity names this replica in the Lease (hostname_pid).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	Log                                       *slog.Logger
}

// Leading says whether this replica may still start anything: nil while
// it holds the Lease, else an error wrapping ErrLeaseLost that says why
// not. It is asked right before every instant is claimed and before
// every fire is decided.
type Leading func() error

// Identity is this process's name in a Lease: hostname and pid.
func Identity() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "unknown"
	}
	return fmt.Sprintf("%s_%d", h, os.Getpid())
}

// RunElected waits until this replica holds the Lease, then calls lead with
// a context that ends when the Lease is lost (cause ErrLeaseLost) or ctx
// ends, and the fence to ask before starting anything. The Lease counts
// as lost as soon as it was not renewed within the renew deadline, or a
// read of it names another holder (leaseFence), without waiting for
// client-go to give up. It returns when lead has returned: nil after ctx
// ended, an error wrapping ErrLeaseLost if the Lease was lost. The Lease
// is released on a clean stop so another replica takes over at once.
func RunElected(ctx context.Context, l Leader, lead func(ctx context.Context, leading Leading) error) error {
	// Every call to the API server has a deadline: the renewals are
	// bounded by client-go's renew deadline, but the reads of a follower
	// trying to acquire are not. Half the renew deadline leaves a renewal
	// room for a second try.
	cfg := rest.CopyConfig(l.Config)
	if cfg.Timeout <= 0 || cfg.Timeout > l.RenewDeadline/2 {
		cfg.Timeout = l.RenewDeadline / 2
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("leader election: client: %w", err)
	}
	fence := newLeaseFence(&resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}, nil, l.RenewDeadline)
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	electCtx, stopElecting := context.WithCancel(ctx)
	defer stopElecting()
	acquired := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            fence,
		LeaseDuration:   l.LeaseDuration,
		RenewDeadline:   l.RenewDeadline,
		RetryPeriod:     l.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            l.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { acquired <- lctx },
			OnStoppedLeading: func() { log.Info("stopped leading") },
			OnNewLeader: func(id string) {
				if id != l.Identity {
					log.Info("following", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		le.Run(electCtx)
	}()
	select {
	case lctx := <-acquired:
		log.Info("leading", "lease", l.Namespace+"/"+l.Name)
		// The Lease's context ends with a plain Canceled; the scheduler
		// is told why.
		leadCtx, cancel := context.WithCancelCause(ctx)
		// lctx ends too when ctx does (it descends from it): that is a
		// stop, not a lost Lease. ctx's error is set before its children
		// end, so it tells the two apart.
		stop := context.AfterFunc(lctx, func() {
			if ctx.Err() == nil {
				cancel(ErrLeaseLost)
			}
		})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			if err := fence.watch(leadCtx); err != nil {
				log.Warn("lease lost", "why", err)
				cancel(err)
			}
		}()
		err := lead(leadCtx, fence.Leading)
		stop()
		cancel(nil)
		<-watched
		// A replica that led once exits rather than lead again: its
		// process, not only its context, is what the next leader trusts
		// to be gone.
		stopElecting()
		<-ran
		if ctx.Err() != nil && !errors.Is(err, ErrLeaseLost) {
			return nil
		}
		if err == nil || !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w: %w", ErrLeaseLost, errOrStopped(err))
		}
		return err
	case <-ran:
		if ctx.Err() != nil {
			return nil
		}
		return ErrLeaseLost
	}
}

func errOrStopped(err error) error {
	if err == nil {
		return ErrStopped
	}
	return err
}
