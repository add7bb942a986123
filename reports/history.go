package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A history is a directory of past runs' records, which `chaos gate` reads
// to decide whether a release may go on. `chaos run --history DIR` adds one
// directory per run, DIR/<HistoryName>/report.json (and report.md); a history may as well be
// report directories copied in by hand or by CI (any *.json file at any
// depth is read as a record).

// ErrNotRecord means a JSON file in a history is not the record of a run.
var ErrNotRecord = errors.New("not a chaos run record")

// HistoryName is the path of a run's directory in a history:
// <experiment>/<run id>, made safe for file names. A run id starts with
// when the run started, so an experiment's runs sort by time; a record
// without one (a file that never loaded) is named by its start, in UTC.
func HistoryName(r *Record) string {
	run := r.RunID
	if run == "" {
		run = r.StartedAt.UTC().Format("20060102T150405.000Z")
	}
	return filepath.Join(safeName(r.Experiment.Name), safeName(run))
}

func safeName(s string) string {
	s = strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			return c
		}
		return '_'
	}, s)
	s = strings.Trim(s, ".")
	if len(s) > 80 {
		s = s[:80]
	}
	if s == "" {
		s = "run"
	}
	return s
}

// HistoryRecord is a record found in a history, and the file it came from.
type HistoryRecord struct {
	Path   string
	Record *Record
}

// ReadHistory reads every *.json file under dir as a record. A file that is
// not one (it does not decode, or has no verdict or experiment name) is an
// error naming the file: the gate cannot tell what it held, and a gate that
// guesses lets a release through on a corrupt file.
func ReadHistory(dir string) ([]HistoryRecord, error) {
	var out []HistoryRecord
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".json") {
			return nil
		}
		rec, err := ReadRecord(path)
		if err != nil {
			return err
		}
		out = append(out, HistoryRecord{Path: path, Record: rec})
		return nil
	})
	return out, err
}

// ReadRecord reads a record from a report.json file.
func ReadRecord(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrNotRecord, err)
	}
	if rec.Verdict == "" || rec.Experiment.Name == "" {
		return nil, fmt.Errorf("%s: %w: it has no verdict or experiment name", path, ErrNotRecord)
	}
	return &rec, nil
}
