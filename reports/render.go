package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Errors returned by the renderers and by WriteFiles.
var (
	// ErrNilRecord means a renderer was handed no record. It is a bug in the
	// caller: even a run that never started has a record with a verdict.
	ErrNilRecord = errors.New("nil record")
)

// Renderer turns a record into one report format.
//
// A renderer only reads the record; it never changes it and never decides
// anything the engine has not already decided. The same record must always
// render to the same bytes, so reports can be diffed and checked against
// golden files.
type Renderer interface {
	Render(w io.Writer, r *Record) error
}

// RendererFunc lets an ordinary function be used as a Renderer, the way
// http.HandlerFunc does for handlers.
type RendererFunc func(w io.Writer, r *Record) error

// Render calls f(w, r).
func (f RendererFunc) Render(w io.Writer, r *Record) error {
	return f(w, r)
}

// JSON renders the full record as indented JSON, exactly as the record types
// encode: field order follows the struct definitions and map keys are sorted,
// so the output is stable. Durations are integer nanoseconds, as
// encoding/json writes a time.Duration. The zero value is ready to use.
type JSON struct{}

// Render writes r as JSON followed by a newline. Nothing is written when the
// record cannot be encoded, so a half-written report never reaches w.
func (JSON) Render(w io.Writer, r *Record) error {
	if r == nil {
		return ErrNilRecord
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	// Expressions such as "latency < 300ms" are read by people in the file
	// too; escaping < and > to \u003c would only make them harder to read.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode json report: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}
