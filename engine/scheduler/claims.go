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
// schedule its claims are kept; half of it is the clock skew between
// replicas the claims tolerate (see Claims).
const ClaimMargin = 10 * time.Minute

// ErrClaimTooOld refuses a claim of an instant older than the claims are
// kept: its claim, if it had one, may have been pruned, so claiming it
// again could decide its fires twice.
var ErrClaimTooOld = errors.New("the fire is older than the claims are kept")

// claimLayout names a claim file: the instant's time, to the second (cron
// has no finer unit).
const claimLayout = "20060102T150405Z"

// Claims are a schedule's claims in the state directory the replicas of
// leader election share (STATE/fires/SCHEDULE): one file per due instant,
// STATE/fires/SCHEDULE/TIME, created once (ClaimInstant), naming the
// replica that claimed it. (A single scheduler keeps no claims: it holds
// the schedule's lock and a progress record instead, Progress.) A leader
// claims an instant before it decides any of its fires (a second ahead:
// Scheduler.Run), and the claim covers every fire of the schedule due at
// that instant, whether
// each runs or is skipped; a replica that finds the instant claimed by
// another skips all of its fires as claimed. So that
//
//   - no fire is decided twice: one replica only claims an instant, even
//     across a change of leader;
//   - the newest claimed instant (or an entry's since file, when that is
//     newer: Resume) is where the last leader got to, and a new leader
//     catches up the fires after it (Scheduler.Run).
//
// One file and one sync per instant, not per fire: at 10,000 entries
// about 167 fires fall due on one instant, and a file per fire made them
// wait for each other's syncs.
//
// The claims are bounded by Prune: it removes claims older than Keep, but
// never the newest. Exactly once holds across pruning because an instant
// older than Keep - ClaimMargin/2 is never claimed (ErrClaimTooOld): what
// Prune removes can no longer be asked for, even by a replica whose clock
// is up to ClaimMargin/2 behind.
//
// The versions before this one claimed each fire in an entry folder,
// STATE/fires/SCHEDULE/ENTRY/TIME. Such a claim is read as where that
// entry's record ends (Resume), so a leader of this version on that
// directory decides none of those fires again, and Prune keeps pruning
// them (an entry's newest stays); new claims are only per instant. A
// leader of that version does not read instants' claims: it must not
// lead after one of this version did (upgrade by stopping the old
// replicas, not by a rolling update).
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

// horizon is the oldest instant that may still be claimed at now.
func (c *Claims) horizon(now time.Time) time.Time {
	return now.Add(-(c.Keep - ClaimMargin/2))
}

// Claim claims the instant at, and so every fire due at it, for this
// replica; false when it was already claimed. now is this replica's
// clock.
func (c *Claims) Claim(at, now time.Time) (bool, error) {
	if c.Leading != nil {
		if err := c.Leading(); err != nil {
			return false, err
		}
	}
	if at.Before(c.horizon(now)) {
		return false, fmt.Errorf("claim the fires due at %s: %w (%s)", at.Format(time.RFC3339), ErrClaimTooOld, c.Keep-ClaimMargin/2)
	}
	return ClaimInstant(c.Dir, at, c.Identity)
}

// Last is the newest claimed instant; zero when there is none.
func (c *Claims) Last() (time.Time, error) {
	ts, err := c.list(c.Dir)
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
// it fell due while no replica was leading. newest is the newest claimed
// instant (Last). It is the newest of that, the entry's since file (when
// a leader first began scheduling it) and the entry's newest claim in the
// older per-entry layout. An entry with neither a since file nor an old
// claim is new to the directory (a first start, an entry just added):
// Resume records now as its beginning and returns zero, so nothing before
// now is ever caught up for it, and a leader stopped before the entry's
// first fire has that fire caught up by the next.
func (c *Claims) Resume(entry string, newest, now time.Time) (time.Time, error) {
	old, err := c.list(filepath.Join(c.Dir, entry))
	if err != nil {
		return time.Time{}, err
	}
	since, err := c.since(entry)
	if err != nil {
		return time.Time{}, err
	}
	if len(old) > 0 || !since.IsZero() {
		last := since
		if len(old) > 0 && old[len(old)-1].After(last) {
			last = old[len(old)-1]
		}
		if newest.After(last) {
			last = newest
		}
		return last, nil
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
// it first (createOnce). It is not synced: a leader writes one per entry
// when it first starts on a directory, 10,000 syncs at 10,000 entries,
// beside the fires. A since file lost in a crash makes its entry new to
// the directory again, so the next leader catches up nothing of it: a fire
// may be left undecided, never decided twice.
func (c *Claims) begin(entry string, now time.Time) error {
	d := filepath.Join(c.Dir, entry)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("begin claims: %w", err)
	}
	if _, err := createOnce(c.Dir, filepath.Join(d, sinceFile), fmt.Sprintf("%s %s\n", now.UTC().Format(time.RFC3339Nano), c.Identity), false); err != nil {
		return fmt.Errorf("begin claims: %w", err)
	}
	return nil
}

// holder is who claimed the instant at, as its claim file says; empty
// when that cannot be read (the claim is being written).
func (c *Claims) holder(at time.Time) string {
	text, err := readSmall(filepath.Join(c.Dir, at.UTC().Format(claimLayout)))
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

// list is the claimed times in dir, oldest first: the instants in the
// schedule's folder, or an entry folder's claims of the older layout.
// Files that are not claims (entry folders, since files, temporary files)
// are left out.
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
		if !de.Type().IsRegular() {
			continue
		}
		if t, err := time.Parse(claimLayout, de.Name()); err == nil {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, time.Time.Compare)
	return ts, nil
}

// Prune removes the claimed instants older than Keep at now, except the
// newest, and the older layout's claims older than Keep, except each
// entry's newest, and says how many it removed. An entry folder left with
// only an old newest claim stays: it is where a leader resumes that entry.
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
	prune := func(dir string) {
		ts, err := c.list(dir)
		if err != nil {
			errs = append(errs, err)
			return
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
	prune(c.Dir)
	for _, de := range des {
		if de.IsDir() {
			prune(filepath.Join(c.Dir, de.Name()))
		}
	}
	return removed, errors.Join(errs...)
}

// ClaimInstant claims the instant at, every fire of the schedule due at
// it, for identity by creating a file in dir (the schedule's folder of
// the state directory) that no other scheduler can create again. It says
// false when the instant was already claimed. Claims.Claim is the checked
// way in.
func ClaimInstant(dir string, at time.Time, identity string) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("claim instant: %w", err)
	}
	ok, err := createOnce(dir, filepath.Join(dir, at.UTC().Format(claimLayout)), identity+"\n", true)
	if err != nil {
		return false, fmt.Errorf("claim instant: %w", err)
	}
	return ok, nil
}

// createOnce creates path with text unless it exists, and says whether it
// did. The text is written under a temporary name in tmpDir (a name that is
// not a claim's, so nobody lists it) and hard-linked into place:
// the link fails if path exists, so only one creator wins, as with O_EXCL
// (and on NFS too), and path is never seen empty or half-written, so a
// loser can read who won. The file is synced after the link, which on a
// journalling filesystem commits the link too, as the sync of a file
// created with O_EXCL commits its creation; unless sync is false.
func createOnce(tmpDir, path, text string, sync bool) (bool, error) {
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
	var serr error
	if sync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(serr, cerr); err != nil {
		return false, err
	}
	return true, nil
}
