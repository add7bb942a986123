package reports_test

import (
	"encoding/xml"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// TestHTMLIsSelfContained checks that the page needs nothing from outside:
// no script, no external style sheet, image or font. A report is attached
// to mails and opened offline, years later.
func TestHTMLIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(`)
	for _, c := range cases {
		page := string(render(t, reports.HTML{}, c.record()))
		require.NotContains(t, strings.ToLower(page), "<script", "%s: the report must not need JavaScript", c.name)
		require.Nil(t, external.FindStringIndex(page), "%s: the report must not fetch anything: %q", c.name, external.FindString(page))
		require.NotContains(t, page, "hooks.example.com", "%s: a webhook URL usually carries a credential", c.name)
		require.NotContains(t, page, "ZgotmplZ", "%s: html/template refused a value in an attribute or style: a colour or width is drawn wrong", c.name)
	}
}

// TestHTMLEscapesEverything puts markup into every text of a record a user
// or a plugin controls: it must come out as text.
func TestHTMLEscapesEverything(t *testing.T) {
	const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	rec := failedRecord()
	rec.Experiment.Name = evil
	rec.Experiment.Hypothesis = evil
	rec.Reason = evil
	rec.Faults[0].Error = evil
	rec.Faults[0].Params["delay"] = evil
	rec.SteadyState[4].Detail = evil
	rec.SteadyState[4].Expression = evil
	rec.Timeline[5].Message = evil
	rec.Timeline[5].Source = evil
	page := string(render(t, reports.HTML{}, rec))
	require.NotContains(t, page, "<script", "markup from the record must be escaped")
	require.NotContains(t, page, "<img", "markup from the record must be escaped")
	require.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "and shown as text")
}

// TestHTMLChartMarksWhatHappened checks the chart's content without a
// browser: a series per probe, the fault windows, the breaches and the
// abort. The screenshot test checks that a browser draws it.
func TestHTMLChartMarksWhatHappened(t *testing.T) {
	page := string(render(t, reports.HTML{}, abortedRecord()))
	require.Equal(t, 1, strings.Count(page, `class="series"`), "one probe, one unbroken line")
	require.Equal(t, 1, strings.Count(page, `class="fault"`), "one fault window shaded")
	require.Equal(t, 1, strings.Count(page, `class="mark-abort"`), "the abort is marked")
	require.Equal(t, 1, strings.Count(page, `class="mark-breach"`), "the breach is marked")
	require.Equal(t, 7, strings.Count(page, `class="failure"`), "each failed observation is marked")
	require.Contains(t, page, "spent <strong>8.4s</strong> of 51.84s", "the budget spent is said")
	require.Contains(t, page, reports.Aborted.Meaning(), "the verdict is said in one sentence for the team")

	// Every chart is well-formed SVG.
	for _, svg := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1) {
		require.NoError(t, xml.Unmarshal([]byte(svg), new(struct{})), "each chart must be well-formed SVG")
	}
}
