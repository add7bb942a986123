package reports

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// The names of the files WriteFiles writes (see also Formats).
const (
	JSONFile     = "report.json"
	MarkdownFile = "report.md"
)

// WriteFiles creates dir if needed and writes the record into it as
// report.json and report.md. It returns the paths it wrote, in that order.
// It is WriteFormats with no format asked for beyond those always written.
func WriteFiles(dir string, r *Record) ([]string, error) {
	return WriteFormats(dir, r, nil)
}

// WriteFormats creates dir if needed and writes the record into it in the
// formats always written (AlwaysWritten) and those asked for, each in its
// file of the table of formats (Formats), in the table's order. It returns
// the paths it wrote.
//
// Each file is written atomically: the report is written to a temporary file
// in dir, synced to disk and renamed over the final name, so a reader (or a
// crash) never sees half a report, and an older report stays whole until the
// new one replaces it. Every report is rendered before anything is written,
// so a record that cannot be rendered leaves dir untouched. An empty dir means
// the current directory.
//
// On error the returned paths are the files already in place.
func WriteFormats(dir string, r *Record, formats []Format) ([]string, error) {
	if r == nil {
		return nil, ErrNilRecord
	}
	if dir == "" {
		dir = "."
	}
	table, err := selectFormats(formats)
	if err != nil {
		return nil, err
	}

	files := make([]struct {
		name     string
		renderer Renderer
		data     []byte
	}, len(table))
	for i, f := range table {
		files[i].name, files[i].renderer = f.File, f.Renderer
	}
	for i := range files {
		var buf bytes.Buffer
		if err := files[i].renderer.Render(&buf, r); err != nil {
			return nil, fmt.Errorf("render %s: %w", files[i].name, err)
		}
		files[i].data = buf.Bytes()
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create report directory: %w", err)
	}
	var written []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := writeFileAtomic(dir, f.name, f.data); err != nil {
			return written, fmt.Errorf("write %s: %w", path, err)
		}
		written = append(written, path)
	}
	if err := syncDir(dir); err != nil {
		return written, fmt.Errorf("sync report directory %s: %w", dir, err)
	}
	return written, nil
}

// writeFileAtomic writes data to dir/name through a temporary file in the
// same directory, because a rename is only atomic within one file system.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			// Best effort: the error that matters is the one already in err.
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	if _, err = f.Write(data); err != nil {
		return err
	}
	// CreateTemp makes the file private (0600); a report is meant to be read
	// by the whole team, like any file written with os.WriteFile.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// syncDir makes the renames durable: until the directory itself is synced, a
// crash may forget that the new names exist.
func syncDir(dir string) error {
	// Windows cannot open a directory for syncing, and its renames do not
	// need it.
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// WriteAll writes the record's reports into each directory given that is
// not empty (a flag, the file's report.delivery.dir), and returns every
// path written. It stops at the first directory that cannot be written.
func WriteAll(r *Record, dirs ...string) ([]string, error) {
	var all []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		paths, err := WriteFiles(dir, r)
		all = append(all, paths...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}

// WriteAllFormats is WriteAll with the formats asked for besides those
// always written (see WriteFormats).
func WriteAllFormats(r *Record, formats []Format, dirs ...string) ([]string, error) {
	var all []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		paths, err := WriteFormats(dir, r, formats)
		all = append(all, paths...)
		if err != nil {
			return all, err
		}
	}
	return all, nil
}
