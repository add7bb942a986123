package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaos-run/chaos/safety"
)

// ErrScheduleHeld refuses a second scheduler of one schedule on one state
// directory: the first holds the schedule's lock for its whole life.
var ErrScheduleHeld = errors.New("another scheduler of this schedule is running on this state directory")

// HeldError is the refusal of OpenProgress when another process holds the
// schedule's lock. It wraps ErrScheduleHeld and names the holder as it
// wrote itself into the lock file (zero PID: it had not written yet).
type HeldError struct {
	// Path is the lock file.
	Path     string
	PID      int
	Identity string
	Since    time.Time
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("%v: %s is held by a process that has not said who it is yet", ErrScheduleHeld, e.Path)
	}
	return fmt.Sprintf("%v: pid %d (%s, since %s) holds %s", ErrScheduleHeld, e.PID, e.Identity, e.Since.Format(time.RFC3339), e.Path)
}

func (e *HeldError) Unwrap() error { return ErrScheduleHeld }

// The files of a single scheduler in its schedule's folder of the state
// directory (STATE/fires/SCHEDULE). Leader election keeps its claims of
// instants beside them (Claims), which these names are not.
const (
	lockFile     = "scheduler.lock"
	progressFile = "progress.json"
)

// maxProgress bounds what is read of a progress record: an entry takes
// about a hundred bytes, and a schedule of 10,000 entries one megabyte.
const maxProgress = 32 << 20

// SaveEvery is how often at most a scheduler saves its progress record
// while fires are being decided (Progress.Every's default).
const SaveEvery = time.Second

// Progress is a single scheduler's record of how far it got, per entry of
// its schedule, kept in the schedule's folder of the state directory
// (STATE/fires/SCHEDULE/progress.json), and its lock on that folder
// (scheduler.lock), held from OpenProgress to Close: one scheduler per
// schedule per state directory, so the record has one writer and no fire
// is decided by two schedulers.
//
// Per entry, the record has the newest fire the scheduler decided (ran or
// skipped) and when the entry's record began (the first start that
// scheduled it). A scheduler that starts catches up the fires after the
// later of the two (Scheduler.Run).
//
// Nothing of it is written on a fire's path: the loop notes the fire it
// decided in memory, and a writer saves the whole record (a temporary
// file, synced, renamed over the record, the folder synced) at most once
// per Every, and once more when the scheduler stops. A crash loses what
// was decided since the last save, normally the last second: a fire due
// in that second whose run the crash cut short is caught up again after a
// restart within its starting deadline (see DESIGN.md).
type Progress struct {
	// Every is the least time between two saves while fires are being
	// decided; zero is SaveEvery. It paces disk writes, not the schedule,
	// so it is on the real clock.
	Every time.Duration

	dir, identity string
	lock          *os.File
	// entries is the record as read, by entry name.
	entries map[string]progressEntry

	// Of the Run that uses it: the entries of its plan, in plan order.
	saving  sync.Mutex
	buf     []byte   // the last save's, reused
	quoted  [][]byte // the names as JSON strings, then the identity
	names   []string
	since   []time.Time
	decided []atomic.Int64 // UnixNano of the newest fire decided; 0 none
	dirty   chan struct{}
}

// progressRecord is the file's content.
type progressRecord struct {
	// SavedAt is the scheduler's clock when the record was saved: every
	// fire it had decided by then is in it.
	SavedAt time.Time `json:"savedAt"`
	// By is the scheduler that saved it.
	By      string                   `json:"by"`
	Entries map[string]progressEntry `json:"entries"`
}

type progressEntry struct {
	// Since is when a scheduler first began scheduling the entry on this
	// state directory: no fire before it is ever caught up.
	Since time.Time `json:"since"`
	// Decided is the newest fire of the entry a scheduler decided.
	Decided time.Time `json:"decided,omitzero"`
}

// lockHolder is what the lock file says about the scheduler holding it.
type lockHolder struct {
	PID      int       `json:"pid"`
	Identity string    `json:"identity"`
	Since    time.Time `json:"since"`
}

// OpenProgress takes the lock of the schedule's folder dir (made if
// missing) for this process, without waiting, and reads the progress
// record there. Another scheduler of the schedule holding it is a
// *HeldError. identity names this scheduler in the lock and the record.
func OpenProgress(dir, identity string) (*Progress, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open progress: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	// Go opens it close-on-exec, so the plugins a run starts do not
	// inherit the lock and outlive it holding it.
	f, held, err := safety.LockFile(path, lockHolder{PID: os.Getpid(), Identity: identity, Since: time.Now().UTC()})
	if errors.Is(err, safety.ErrFileLocked) {
		var h lockHolder
		_ = json.Unmarshal(held, &h) // a holder between its flock and its write is unknown, not an error
		return nil, &HeldError{Path: path, PID: h.PID, Identity: h.Identity, Since: h.Since}
	}
	if err != nil {
		return nil, fmt.Errorf("open progress: lock %s: %w", path, err)
	}
	p := &Progress{dir: dir, identity: identity, lock: f}
	if p.entries, err = readProgress(filepath.Join(dir, progressFile)); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// Close gives the lock back. The record stays.
func (p *Progress) Close() error {
	if p.lock == nil {
		return nil
	}
	// Emptied first, so a scheduler refused later does not name a holder
	// that is gone.
	_ = p.lock.Truncate(0)
	err := p.lock.Close()
	p.lock = nil
	return err
}

// Path is the progress record's file.
func (p *Progress) Path() string { return filepath.Join(p.dir, progressFile) }

// readProgress reads a progress record; none is an empty one (a first
// start, or a state directory an older version wrote).
func readProgress(path string) (map[string]progressEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]progressEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read progress: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxProgress+1))
	if err != nil {
		return nil, fmt.Errorf("read progress: %s: %w", path, err)
	}
	if len(b) > maxProgress {
		return nil, fmt.Errorf("read progress: %s is larger than %d bytes (remove it to start the record again; nothing is caught up then)", path, maxProgress)
	}
	var rec progressRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		where := path
		if se := (*json.SyntaxError)(nil); errors.As(err, &se) {
			line, col := lineCol(b, se.Offset)
			where = fmt.Sprintf("%s:%d:%d", path, line, col)
		}
		return nil, fmt.Errorf("read progress: %s: %w (remove it to start the record again; nothing is caught up then)", where, err)
	}
	if rec.Entries == nil {
		rec.Entries = map[string]progressEntry{}
	}
	return rec.Entries, nil
}

// lineCol is the line and column (from 1) of byte offset off of b; a
// JSON syntax error's offset is just past the byte it could not read.
func lineCol(b []byte, off int64) (int, int) {
	off = min(max(off-1, 0), int64(len(b)))
	line, col := 1, 1
	for _, c := range b[:off] {
		if c == '\n' {
			line, col = line+1, 1
			continue
		}
		col++
	}
	return line, col
}

// begin prepares the record for a Run of plan starting at start, and says
// where each entry's record ends (zero for an entry new to it: its record
// begins at start). It saves the record once
// before the loop begins, so an entry's beginning survives a crash before
// its first fire. Entries no longer in the schedule are dropped.
func (p *Progress) begin(plan *Plan, start time.Time) ([]time.Time, error) {
	if p.lock == nil {
		return nil, errors.New("progress: used after Close")
	}
	if p.names != nil {
		// A Run before this one, on the same lock, saved it last.
		var err error
		if p.entries, err = readProgress(p.Path()); err != nil {
			return nil, err
		}
	}
	n := len(plan.entries)
	p.names = make([]string, n)
	p.since = make([]time.Time, n)
	p.decided = make([]atomic.Int64, n)
	p.dirty = make(chan struct{}, 1)
	p.quoted = make([][]byte, n+1)
	resume := make([]time.Time, n)
	for i, pe := range plan.entries {
		name := pe.e.Name
		p.names[i] = name
		p.quoted[i], _ = json.Marshal(name) // a string always marshals
		pr, ok := p.entries[name]
		if !ok || pr.Since.IsZero() {
			p.since[i] = start
			continue
		}
		p.since[i] = pr.Since
		resume[i] = pr.Since
		if !pr.Decided.IsZero() {
			p.decided[i].Store(pr.Decided.UnixNano())
			if pr.Decided.After(resume[i]) {
				resume[i] = pr.Decided
			}
		}
	}
	p.quoted[n], _ = json.Marshal(p.identity)
	if err := p.save(start); err != nil {
		return nil, err
	}
	return resume, nil
}

// decidedFire notes that entry i's fire due at at was decided. It is on the
// fire's path, so it only stores in memory and nudges the writer.
func (p *Progress) decidedFire(i int, at time.Time) {
	v := at.UnixNano()
	for {
		old := p.decided[i].Load()
		if old >= v || p.decided[i].CompareAndSwap(old, v) {
			break
		}
	}
	select {
	case p.dirty <- struct{}{}:
	default:
	}
}

// keep saves the record when fires were decided, at most once per Every,
// until stop is closed. now is the scheduler's clock.
func (p *Progress) keep(stop <-chan struct{}, now func() time.Time, log *slog.Logger) {
	every := p.Every
	if every <= 0 {
		every = SaveEvery
	}
	for {
		select {
		case <-stop:
			return
		case <-p.dirty:
		}
		if err := p.save(now()); err != nil {
			log.Warn("save progress", "err", err, "why", "a restart may catch up again what was decided since the last save")
		}
		t := time.NewTimer(every)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// save writes the whole record: under a temporary name, synced, renamed
// over the record, and the folder synced, so a crash leaves the old record
// or the new one, never a part. at is the scheduler's clock, taken before
// the record is read from memory: every fire decided by then is in it.
func (p *Progress) save(at time.Time) error {
	p.saving.Lock()
	defer p.saving.Unlock()
	// Written by hand into one buffer kept between saves, in the form
	// progressRecord reads: at 10,000 entries a save a second through a
	// map and json.Marshal would be most of what the scheduler allocates.
	b := append(p.buf[:0], `{"savedAt":`...)
	b = appendTime(b, at)
	b = append(b, `,"by":`...)
	b = append(b, p.quoted[len(p.quoted)-1]...)
	b = append(b, `,"entries":{`...)
	for i := range p.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, p.quoted[i]...)
		b = append(b, `:{"since":`...)
		b = appendTime(b, p.since[i])
		if v := p.decided[i].Load(); v != 0 {
			b = append(b, `,"decided":`...)
			b = appendTime(b, time.Unix(0, v))
		}
		b = append(b, '}')
	}
	b = append(b, "}}\n"...)
	p.buf = b
	if err := writeSynced(p.dir, progressFile, b); err != nil {
		return fmt.Errorf("save progress: %w", err)
	}
	return nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// writeSynced replaces dir/name with data: a temporary file in dir,
// synced, renamed into place, then dir synced so the rename is durable.
func writeSynced(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".new-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
