package reports

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrUnknownFormat means a format name is none of Formats().
var ErrUnknownFormat = errors.New("unknown report format")

// Format names a report format as the experiment file's report.formats and
// `chaos report --format` say it.
type Format string

// The report formats.
const (
	FormatJSON     Format = "json"
	FormatMarkdown Format = "markdown"
	FormatHTML     Format = "html"
	FormatJUnit    Format = "junit"
)

// The names of the files the HTML and JUnit renderers are written to.
const (
	HTMLFile  = "report.html"
	JUnitFile = "report.junit.xml"
)

// FormatInfo is one row of the table of formats: the renderer that makes it
// and the file a report directory holds it in.
type FormatInfo struct {
	Format   Format
	File     string
	Renderer Renderer
}

// Formats is the table of report formats, in the order their files are
// written: WriteFormats and `chaos report` both read it, so a format added
// here is a file of every run and a choice of the command at once. It is a
// function, not a variable, so nobody can change the table under a running
// program.
func Formats() []FormatInfo {
	return []FormatInfo{
		{Format: FormatJSON, File: JSONFile, Renderer: JSON{}},
		{Format: FormatMarkdown, File: MarkdownFile, Renderer: Markdown{}},
		{Format: FormatHTML, File: HTMLFile, Renderer: HTML{}},
		{Format: FormatJUnit, File: JUnitFile, Renderer: JUnit{}},
	}
}

// AlwaysWritten are the formats every report directory gets whatever the
// file asks for: report.json is the record, which `chaos report` re-renders
// and `chaos gate` reads, and report.md is what the owners read by default.
func AlwaysWritten() []Format { return []Format{FormatJSON, FormatMarkdown} }

// LookupFormat finds a format by its name; "md" is accepted for markdown,
// as people say it.
func LookupFormat(name string) (FormatInfo, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "md" {
		n = string(FormatMarkdown)
	}
	for _, f := range Formats() {
		if string(f.Format) == n {
			return f, nil
		}
	}
	names := make([]string, 0, 4)
	for _, f := range Formats() {
		names = append(names, string(f.Format))
	}
	return FormatInfo{}, fmt.Errorf("%q (use %s): %w", name, strings.Join(names, ", "), ErrUnknownFormat)
}

// selectFormats is the table's rows for the formats asked for plus those
// always written, in the table's order, each once.
func selectFormats(asked []Format) ([]FormatInfo, error) {
	want := AlwaysWritten()
	for _, a := range asked {
		f, err := LookupFormat(string(a))
		if err != nil {
			return nil, err
		}
		want = append(want, f.Format)
	}
	var out []FormatInfo
	for _, f := range Formats() {
		if slices.Contains(want, f.Format) {
			out = append(out, f)
		}
	}
	return out, nil
}
