package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// SkipClaimed: another replica already claimed this fire in the shared
// state directory (it ran it, or is running it).
const SkipClaimed SkipReason = "claimed"

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
// ends. It returns when lead has returned: nil after ctx ended, an error
// wrapping ErrLeaseLost if the Lease was lost. The Lease is released on a
// clean stop so another replica takes over at once.
func RunElected(ctx context.Context, l Leader, lead func(ctx context.Context) error) error {
	cs, err := kubernetes.NewForConfig(l.Config)
	if err != nil {
		return fmt.Errorf("leader election: client: %w", err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	log := l.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	electCtx, stopElecting := context.WithCancel(ctx)
	defer stopElecting()
	acquired := make(chan context.Context, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
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
		stop := context.AfterFunc(lctx, func() { cancel(ErrLeaseLost) })
		err := lead(leadCtx)
		stop()
		cancel(nil)
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

// ClaimFire claims one fire of an entry for this replica by creating a
// file in dir (the shared state directory's fires/ folder) that no other
// replica can create again: O_EXCL on one filesystem. It says false when
// the fire was already claimed.
func ClaimFire(dir, entry string, at time.Time, identity string) (bool, error) {
	d := filepath.Join(dir, entry)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d, at.UTC().Format("20060102T150405Z")), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	_, werr := f.WriteString(identity + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	return true, nil
}
