package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/chaos-run/chaos/internal/clock"
)

// leaseFence wraps the Lease lock client-go's elector uses, to know for
// itself whether this replica may still start anything. client-go's own
// view lags: after its last renew it goes on believing it leads until a
// full renew deadline of failed attempts has passed, and a process that
// was stopped (SIGSTOP, a frozen VM) wakes believing it leads while
// another replica has long taken the Lease. The fence is stricter:
//
//   - it holds only while the last successful write of the Lease naming
//     this replica started less than the renew deadline ago. A follower
//     takes the Lease no earlier than the lease duration after it saw
//     that write, which is after the write started, so the fence falls
//     at least lease duration minus renew deadline before anyone else
//     can lead: the margin a claim and a run's start need;
//   - it falls at once when a read of the Lease shows another holder
//     (someone replaced it through the API, or this replica slept past
//     the Lease), or a write names another holder (the release).
//
// A fence that fell never stands again: the replica exits rather than
// lead twice (RunElected).
type leaseFence struct {
	resourcelock.Interface
	clk      clock.Clock
	deadline time.Duration // the renew deadline

	mu      sync.Mutex
	renewed time.Time // when the last successful write naming us started
	lost    error     // set once the fence fell for good
	fell    chan struct{}
}

func newLeaseFence(lock resourcelock.Interface, clk clock.Clock, renewDeadline time.Duration) *leaseFence {
	return &leaseFence{Interface: lock, clk: clock.Or(clk), deadline: renewDeadline, fell: make(chan struct{})}
}

// Get reads the Lease; once this replica has led, a record naming another
// holder means it no longer does.
func (f *leaseFence) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := f.Interface.Get(ctx)
	if err == nil && rec != nil && rec.HolderIdentity != f.Identity() {
		f.mu.Lock()
		if !f.renewed.IsZero() {
			f.fallLocked(fmt.Errorf("%w: the Lease names %q", ErrLeaseLost, rec.HolderIdentity))
		}
		f.mu.Unlock()
	}
	return rec, raw, err
}

// Create writes the Lease for the first time.
func (f *leaseFence) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := f.fallen(); err != nil {
		return err
	}
	start := f.clk.Now()
	err := f.Interface.Create(ctx, ler)
	f.wrote(start, ler, err)
	return err
}

// Update renews (or releases) the Lease. A replica whose fence fell
// writes nothing: client-go releases the Lease when it stops leading,
// from its own last view of the Lease, and a replica woken from a stop
// still believes that view names it; its release would clear the new
// leader's Lease.
func (f *leaseFence) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if err := f.fallen(); err != nil {
		return err
	}
	start := f.clk.Now()
	err := f.Interface.Update(ctx, ler)
	f.wrote(start, ler, err)
	return err
}

func (f *leaseFence) wrote(start time.Time, ler resourcelock.LeaderElectionRecord, err error) {
	if err != nil {
		return // the time fence decides: a failed write renews nothing
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ler.HolderIdentity != f.Identity() {
		if !f.renewed.IsZero() {
			f.fallLocked(fmt.Errorf("%w: released", ErrLeaseLost))
		}
		return
	}
	if f.lost == nil && start.After(f.renewed) {
		f.renewed = start
	}
}

func (f *leaseFence) fallLocked(err error) {
	if f.lost == nil {
		f.lost = err
		close(f.fell)
	}
}

// fallen refuses a write once the fence fell; before this replica first
// led, writes (its attempts to acquire) go through.
func (f *leaseFence) fallen() error {
	f.mu.Lock()
	held := !f.renewed.IsZero()
	f.mu.Unlock()
	if !held {
		return nil
	}
	if err := f.Leading(); err != nil {
		return fmt.Errorf("not writing the Lease: %w", err)
	}
	return nil
}

// Leading is nil while the fence stands, else an error wrapping
// ErrLeaseLost that says why it fell.
func (f *leaseFence) Leading() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lost != nil {
		return f.lost
	}
	if f.renewed.IsZero() {
		return fmt.Errorf("%w: never held", ErrLeaseLost)
	}
	if since := f.clk.Now().Sub(f.renewed); since >= f.deadline {
		f.fallLocked(fmt.Errorf("%w: not renewed for %s (renew deadline %s)", ErrLeaseLost, since.Round(time.Millisecond), f.deadline))
		return f.lost
	}
	return nil
}

// watch returns when the fence falls (with why) or ctx ends (nil): it
// waits on the clock for the renew deadline of the last renew, and on
// the fall a read or write saw.
func (f *leaseFence) watch(ctx context.Context) error {
	for {
		if err := f.Leading(); err != nil {
			return err
		}
		f.mu.Lock()
		left := f.deadline - f.clk.Now().Sub(f.renewed)
		f.mu.Unlock()
		t := f.clk.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-f.fell:
			t.Stop()
		case <-t.C():
		}
	}
}
