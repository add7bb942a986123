package scheduler

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// Claims are a schedule's fire claims in the state directory the
// replicas of leader election share (STATE/fires/SCHEDULE): ENTRY/TIME,
// created once (ClaimFire), naming the replica that decided the fire.
// (A single scheduler keeps no claims: it holds the schedule's lock and a
// progress record instead, Progress.) Every fire a leader decides is
// claimed first, whether it runs or is skipped, so that
//
//   - no fire is decided twice: a fire already claimed is skipped as
//     claimed, even across a change of leader;
//   - an entry's newest claim (or its since file, before its first claim:
//     Resume) is where the last leader got to, and a new leader catches
//     up the fires after it (Scheduler.Run).
//
// The claims are bounded by Prune: it removes claims older than Keep, but
// never an entry's newest one. Exactly once holds across pruning because
// a fire older than Keep - ClaimMargin/2 is never claimed (ErrClaimTooOld):
// what Prune removes can no longer be asked for, even by a replica whose
// clock is up to ClaimMargin/2 behind.
type Claims struct {
	// Dir is the schedule's folder of the state directory,
	// STATE/fires/SCHEDULE.
	Dir string
	// Identity names this replica in its claims.
	Identity string
	// Leading is asked before every claim: an error (the Lease is lost)
	// refuses the claim with that error. Nil asks nothing (tests).
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

// sinceFile, in an entry's folder, records when a leader first began
// scheduling the entry on this directory: an RFC 3339 time and the
// identity that wrote it. Its name is not a claim's, so list, Last and
// Prune pass it by.
const sinceFile = "since"

// maxSince bounds what is read of a since file or a claim: a time and an
// identity fit many times over.
const maxSince = 512

// Resume is where entry's record in the directory ends: the fires after
// it fell due while no replica was leading. It is the entry's newest
// claim, or, for an entry never claimed, when a leader first began
// scheduling it (its since file). An entry with neither is new to the
// directory (a first start, a state directory an older version wrote, an
// entry just added): Resume records now as its beginning and returns
// zero, so nothing before now is ever caught up, and a leader stopped
// before the entry's first fire has that fire caught up by the next.
func (c *Claims) Resume(entry string, now time.Time) (time.Time, error) {
	last, err := c.Last(entry)
	if err != nil || !last.IsZero() {
		return last, err
	}
	since, err := c.since(entry)
	if err != nil || !since.IsZero() {
		return since, err
	}
	if c.Leading != nil {
		if err := c.Leading(); err != nil {
			return time.Time{}, err
		}
	}
	if err := c.begin(entry, now); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, nil
}

// since reads entry's since file; zero when there is none.
func (c *Claims) since(entry string) (time.Time, error) {
	path := filepath.Join(c.Dir, entry, sinceFile)
	text, err := readSmall(path)
	if errors.Is(err, os.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read claims: %w", err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(text), " ")
	t, err := time.Parse(time.RFC3339Nano, first)
	if err != nil {
		return time.Time{}, fmt.Errorf("read claims: %s: %q is not an RFC 3339 time (remove the file to start the entry's record again)", path, first)
	}
	return t, nil
}

// begin writes entry's since file, at now, unless another scheduler wrote
// it first (createOnce).
func (c *Claims) begin(entry string, now time.Time) error {
	d := filepath.Join(c.Dir, entry)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("begin claims: %w", err)
	}
	if _, err := createOnce(c.Dir, filepath.Join(d, sinceFile), fmt.Sprintf("%s %s\n", now.UTC().Format(time.RFC3339Nano), c.Identity)); err != nil {
		return fmt.Errorf("begin claims: %w", err)
	}
	return nil
}

// holder is who claimed entry's fire due at at, as its claim file says;
// empty when that cannot be read (the claim is being written).
func (c *Claims) holder(entry string, at time.Time) string {
	text, err := readSmall(filepath.Join(c.Dir, entry, at.UTC().Format(claimLayout)))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(text)
}

// readSmall reads at most maxSince bytes of a file.
func readSmall(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxSince))
	return string(b), err
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
// dir (the state directory's fires/ folder) that no other scheduler can
// create again. It says false when the fire was already claimed.
// Claims.Claim is the checked way in.
func ClaimFire(dir, entry string, at time.Time, identity string) (bool, error) {
	d := filepath.Join(dir, entry)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	ok, err := createOnce(dir, filepath.Join(d, at.UTC().Format(claimLayout)), identity+"\n")
	if err != nil {
		return false, fmt.Errorf("claim fire: %w", err)
	}
	return ok, nil
}

// createOnce creates path with text unless it exists, and says whether it
// did. The text is written under a temporary name in tmpDir (beside the
// entry folders, where nobody lists claims) and hard-linked into place:
// the link fails if path exists, so only one creator wins, as with O_EXCL
// (and on NFS too), and path is never seen empty or half-written, so a
// loser can read who won. The file is synced after the link, which on a
// journalling filesystem commits the link too, as the sync of a file
// created with O_EXCL commits its creation.
func createOnce(tmpDir, path, text string) (bool, error) {
	f, err := os.CreateTemp(tmpDir, ".new-*")
	if err != nil {
		return false, err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return false, err
	}
	err = os.Link(f.Name(), path)
	if errors.Is(err, os.ErrExist) {
		return false, f.Close()
	}
	if err != nil {
		_ = f.Close()
		return false, err
	}
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return false, err
	}
	return true, nil
}
