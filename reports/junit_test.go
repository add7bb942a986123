package reports_test

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// junitDoc is what a CI system reads of a JUnit file.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name       string `xml:"name,attr"`
		Tests      int    `xml:"tests,attr"`
		Failures   int    `xml:"failures,attr"`
		Errors     int    `xml:"errors,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name      string `xml:"name,attr"`
			ClassName string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, rec *reports.Record) junitDoc {
	t.Helper()
	var doc junitDoc
	require.NoError(t, xml.Unmarshal(render(t, reports.JUnit{}, rec), &doc),
		"the JUnit report must be well-formed XML, or CI systems drop it")
	require.Len(t, doc.Suites, 1, "one test suite per run")
	return doc
}

// TestJUnitCounts checks that the file parses and that it has a test case
// per steady-state expression per phase and per budget condition, with
// counts that add up: CI systems show the counts before anything else.
func TestJUnitCounts(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		rec                              *reports.Record
		tests, failures, errors, skipped int
	}{
		// 3 checks, all held.
		{"passed", passedRecord(), 3, 0, 0, 0},
		// 6 checks, 2 breached during the faults.
		{"failed", failedRecord(), 6, 2, 0, 0},
		// 3 checks (1 breached), 2 abortWhen conditions (1 tripped), the
		// error budget.
		{"aborted", abortedRecord(), 6, 2, 0, 0},
		// 3 checks (after not evaluated), the run's error.
		{"error", errorRecord(), 4, 0, 1, 1},
		// No check: the run case carries the verdict.
		{"invalid", invalidRecord(), 1, 0, 1, 0},
		{"refused", refusedRecord(), 1, 0, 0, 1},
		{"not steady before", notSteadyBeforeRecord(), 1, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := parseJUnit(t, tc.rec)
			s := doc.Suites[0]
			require.Equal(t, []int{tc.tests, tc.failures, tc.errors, tc.skipped}, []int{doc.Tests, doc.Failures, doc.Errors, doc.Skipped},
				"tests, failures, errors and skipped of the file")
			require.Len(t, s.Cases, tc.tests, "the suite's test cases are the count it declares")
			var failures, errs, skipped int
			for _, c := range s.Cases {
				if c.Failure != nil {
					failures++
					require.NotEmpty(t, c.Failure.Message, "a failure must say why in its message: CI shows it first")
				}
				if c.Error != nil {
					errs++
				}
				if c.Skipped != nil {
					skipped++
				}
			}
			require.Equal(t, []int{tc.failures, tc.errors, tc.skipped}, []int{failures, errs, skipped},
				"the counts must match the cases, or CI shows a green summary over red cases")
			props := map[string]string{}
			for _, p := range s.Properties {
				props[p.Name] = p.Value
			}
			require.Equal(t, string(tc.rec.Verdict), props["verdict"], "the suite carries the verdict")
		})
	}
}

func TestJUnitFailureHasObservedValuesAndReason(t *testing.T) {
	doc := parseJUnit(t, abortedRecord())
	var budget, check string
	for _, c := range doc.Suites[0].Cases {
		if c.Failure == nil {
			continue
		}
		switch {
		case strings.HasPrefix(c.Name, "abortWhen: "):
			budget = c.Failure.Message
		case strings.HasPrefix(c.Name, "steady state during: "):
			check = c.Failure.Body
		}
	}
	require.Contains(t, budget, "failureRatio=0.24", "the tripped condition's message must carry the values it held on")
	require.Contains(t, check, "checkout.status = 0", "the breached check's text must carry the observed values")
	require.Contains(t, check, "verdict: aborted", "and the run's verdict and reason")
}

func TestJUnitEscapesHostileText(t *testing.T) {
	rec := failedRecord()
	rec.Experiment.Name = `x"><evil/>`
	rec.SteadyState[4].Detail = "]]><evil/><![CDATA["
	doc := parseJUnit(t, rec)
	require.Equal(t, `x"><evil/>`, doc.Suites[0].Name, "names are escaped, not markup")
}
