package scheduler

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ClaimMargin is how much longer than the longest starting deadline of a
// schedule its fire claims are kept; half of it is the clock skew between
// replicas the claims tolerate (see Claims).
const ClaimMargin = 10 * time.Minute

// ErrClaimTooOld refuses a claim of a fire older than the claims are kept:
// its claim, if it had one, may have been pruned, so claiming it again
// could run it twice.
var ErrClaimTooOld = errors.New("the fire is older than the claims are kept")

// claimLayout names a claim file: the fire's due time, to the second (cron
// has no finer unit).
const claimLayout = "20060102T150405Z"

// Claims are a schedule's fire claims in a directory every replica shares
// (STATE/fires): ENTRY/TIME, created with O_EXCL, naming the replica that
// decided the fire. Every fire a leader decides is claimed first, whether
// it runs or is skipped, so that
//
//   - no fire is decided twice: a fire already claimed is skipped as
//     claimed, even across a change of leader;
//   - an entry's newest claim is where the last leader got to, and a new
//     leader catches up the fires after it (Scheduler.Run).
//
// The claims are bounded by Prune: it removes claims older than Keep, but
// never an entry's newest one. Exactly once holds across pruning because
// a fire older than Keep - ClaimMargin/2 is never claimed (ErrClaimTooOld):
// what Prune removes can no longer be asked for, even by a replica whose
// clock is up to ClaimMargin/2 behind.
type Claims struct {
	// Dir is the shared directory, STATE/fires.
	Dir string
	// Identity names this replica in its claims.
	Identity string
	// Leading, when set, is asked before every claim: an error (the Lease
	// is lost) refuses the claim with that error.
	Leading Leading
	// Keep is how long claims are kept: the schedule's longest starting
	// deadline plus ClaimMargin (KeepClaims), or more. The Scheduler
	// raises it to that; used alone, Claims needs it set.
	Keep time.Duration
}

// KeepClaims is how long the claims of plan's fires are kept.
func KeepClaims(p *Plan) time.Duration {
	var longest time.Duration
	for _, pe := range p.entries {
		longest = max(longest, pe.e.StartingDeadline)
	}
	return longest + ClaimMargin
}

// horizon is the oldest fire that may still be claimed at now.
func (c *Claims) horizon(now time.Time) time.Time {
	return now.Add(-(c.Keep - ClaimMargin/2))
}

// Claim claims entry's fire due at at, for this replica; false when it was
// already claimed. now is this replica's clock.
func (c *Claims) Claim(entry string, at, now time.Time) (bool, error) {
	if c.Leading != nil {
		if err := c.Leading(); err != nil {
			return false, err
		}
	}
	if at.Before(c.horizon(now)) {
		return false, fmt.Errorf("claim %s fire due at %s: %w (%s)", entry, at.Format(time.RFC3339), ErrClaimTooOld, c.Keep-ClaimMargin/2)
	}
	return ClaimFire(c.Dir, entry, at, c.Identity)
}

// Last is entry's newest claimed fire; zero when it has none.
func (c *Claims) Last(entry string) (time.Time, error) {
	ts, err := c.list(filepath.Join(c.Dir, entry))
	if err != nil || len(ts) == 0 {
		return time.Time{}, err
	}
	return ts[len(ts)-1], nil
}

// list is the claimed fire times in one entry's folder, oldest first;
// files that are not claims are left out.
func (c *Claims) list(dir string) ([]time.Time, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claims: %w", err)
	}
	var ts []time.Time
	for _, de := range des {
		if t, err := time.Parse(claimLayout, de.Name()); err == nil && de.Type().IsRegular() {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, time.Time.Compare)
	return ts, nil
}

// Prune removes the claims older than Keep at now, except each entry's
// newest, and says how many it removed. An entry folder left with only an
// old newest claim stays: it is where a leader resumes that entry.
func (c *Claims) Prune(now time.Time) (int, error) {
	des, err := os.ReadDir(c.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune claims: %w", err)
	}
	cutoff := now.Add(-c.Keep)
	removed := 0
	var errs []error
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		dir := filepath.Join(c.Dir, de.Name())
		ts, err := c.list(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range ts[:max(len(ts)-1, 0)] {
			if !t.Before(cutoff) {
				break
			}
			err := os.Remove(filepath.Join(dir, t.UTC().Format(claimLayout)))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("prune claims: %w", err))
				continue
			}
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// ClaimFire claims one fire of an entry for identity by creating a file in
// dir (the shared state directory's fires/ folder) that no other replica
// can create again: O_EXCL on one filesystem. It says false when the fire
// was already claimed. Claims.Claim is the checked way in.
func ClaimFire(dir, entry string, at time.Time, identity string) (bool, error) {
	d := filepath.Join(dir, entry)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d, at.UTC().Format(claimLayout)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
