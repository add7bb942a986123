package experiments_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

var plugins = experiments.Options{Plugins: []string{"latency", "cpustress", "podkill"}, LookupEnv: lookupSecret}

func TestExamplesAreValid(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files, "the examples are part of the product and must exist")
	for _, f := range files {
		exp, err := experiments.Load(f, plugins)
		require.NoError(t, err, "example %s must validate", f)
		require.NotEmpty(t, exp.Spec.SteadyState[0].Probes(), "a compiled expression knows which probes it reads")
	}
}

// TestEveryProblemAtOnce checks that one bad file yields every problem, in
// file order, each at its exact line and column (the value a problem is
// about, not the mapping it is in), with a hint where one helps.
func TestEveryProblemAtOnce(t *testing.T) {
	_, err := experiments.Load("testdata/many-mistakes.yaml", plugins)
	require.ErrorIs(t, err, experiments.ErrInvalid)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	type want struct {
		line, col int
		path      string
		hint      string
	}
	var got []want
	for _, p := range fe.Problems {
		got = append(got, want{p.Pos.Line, p.Pos.Col, p.Path, p.Hint})
	}
	require.Equal(t, []want{
		{4, 9, "metadata.name", "e.g. bad-name"},
		{13, 14, "spec.probes.checkout.every", ""},
		{14, 7, "spec.probes.checkout.timout", `did you mean "timeout"?`},
		{16, 33, "spec.steadyState[0]", `did you mean "checkout"?`},
		{17, 32, "spec.steadyState[1]", "the expression ends too early: is something missing after the last operator?"},
		{19, 16, "spec.faults[0].plugin", `did you mean "latency"?`},
		{19, 32, "spec.faults[0].target", `did you mean "upstream"?`},
	}, got, "every problem must be reported at once, in file order, with its position")
}

func TestExpressionTypeErrorPosition(t *testing.T) {
	src := minimal(`    - checkout.status == "200"` + "\n")
	_, err := experiments.Parse("x.yaml", []byte(src), plugins)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Problems, 1)
	p := fe.Problems[0]
	require.Equal(t, 13, p.Pos.Line, "the problem is on the expression's line")
	require.Greater(t, p.Pos.Col, 7, "the column points inside the expression, not at its start")
	require.Contains(t, p.Message, "mismatched types")
}

func TestYAMLSyntaxErrorHasALine(t *testing.T) {
	_, err := experiments.Parse("x.yaml", []byte("apiVersion: chaos/v1\nkind: [\n"), plugins)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, 2, fe.Problems[0].Pos.Line, "yaml.v3 reports the line where the flow sequence opened")
}

func TestEmptyFile(t *testing.T) {
	_, err := experiments.Parse("x.yaml", nil, plugins)
	require.ErrorIs(t, err, experiments.ErrInvalid)
}

func TestDefaultsApplied(t *testing.T) {
	exp, err := experiments.Parse("x.yaml", []byte(minimal("    - checkout.status == 200\n")), plugins)
	require.NoError(t, err)
	p := exp.Spec.Probes["checkout"]
	require.Equal(t, experiments.DefaultProbeEvery, p.Every)
	require.Equal(t, time.Second, p.Timeout, "the timeout defaults to at most the interval")
	require.Equal(t, "GET", p.HTTP.Method)
	require.Equal(t, experiments.DefaultMaxDuration, exp.Spec.Safety.EffectiveMaxDuration())
	require.Equal(t, 30*time.Second, exp.Spec.FaultPhase())
}

func TestMaxDurationMustCoverFaults(t *testing.T) {
	src := minimal("    - checkout.status == 200\n") + "  safety: {maxDuration: 10s}\n"
	_, err := experiments.Parse("x.yaml", []byte(src), plugins)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "spec.safety.maxDuration", fe.Problems[0].Path)
}

func TestFileErrorFormat(t *testing.T) {
	fe := &experiments.FileError{File: "a.yaml", Problems: []experiments.Problem{{Pos: experiments.Pos{Line: 3, Col: 5}, Message: "bad", Hint: "try good"}}}
	require.Equal(t, "a.yaml:3:5: bad (try good)", fe.Error())
}

// minimal is a valid experiment with the given steady-state lines (line 13
// is the first of them).
func minimal(steady string) string {
	return `apiVersion: chaos/v1
kind: Experiment
metadata:
  name: minimal
  owner: {team: payments}
spec:
  hypothesis: it holds
  targets:
    upstream: {endpoint: {listen: 127.0.0.1:18080, upstream: 127.0.0.1:8080}}
  probes:
    checkout: {http: {url: http://127.0.0.1:8080/health}}
  steadyState:
` + steady + `  faults:
    - {plugin: latency, target: upstream, with: {delay: 200ms}, for: 30s}
`
}

// TestOneExperimentPerFile: a second YAML document is a problem at the ---
// that starts it, whether it parses or not; a leading or trailing --- is
// not a second experiment.
func TestOneExperimentPerFile(t *testing.T) {
	one := minimal("    - checkout.status == 200\n")
	lines := strings.Count(one, "\n")
	for name, tc := range map[string]struct {
		src  string
		line int // 0: the file is fine
	}{
		"leading separator":   {src: "---\n" + one},
		"trailing separator":  {src: one + "---\n"},
		"second experiment":   {src: one + "---\n" + one, line: lines + 1},
		"broken second":       {src: one + "---\nspec: [\n", line: lines + 1},
		"second after a note": {src: one + "--- # another\n" + one, line: lines + 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := experiments.Parse("multi.yaml", []byte(tc.src), plugins)
			if tc.line == 0 {
				require.NoError(t, err, "a lone --- does not start a second experiment")
				return
			}
			var fe *experiments.FileError
			require.ErrorAs(t, err, &fe, "a second document must not be ignored")
			require.Len(t, fe.Problems, 1, fe.Error())
			require.Equal(t, experiments.Pos{Line: tc.line, Col: 1}, fe.Problems[0].Pos, "the problem points at the --- of the second document")
			require.Contains(t, fe.Problems[0].Message, "one experiment per file")
		})
	}
}

// TestDefaultLeaseTTLLongerThanMaxDuration: a file that does not set
// leaseTTL is told that 10s is the default and how to set it, at its
// maxDuration, not about a field it does not have.
func TestDefaultLeaseTTLLongerThanMaxDuration(t *testing.T) {
	src := strings.Replace(minimal("    - checkout.status == 200\n"), "for: 30s", "for: 3s", 1) + "  safety: {maxDuration: 5s}\n"
	_, err := experiments.Parse("x.yaml", []byte(src), plugins)
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe)
	require.Len(t, fe.Problems, 1, fe.Error())
	p := fe.Problems[0]
	require.Equal(t, "spec.safety.maxDuration", p.Path, "the file has no leaseTTL to point at")
	require.Equal(t, "maxDuration 5s is shorter than the default leaseTTL 10s: a fault could outlive the run if chaos died", p.Message)
	require.Equal(t, "set safety.leaseTTL shorter than maxDuration (at least 1s), e.g. leaseTTL: 1s, or make maxDuration longer than 10s", p.Hint)

	_, err = experiments.Parse("x.yaml", []byte(strings.Replace(src, "maxDuration: 5s", "maxDuration: 5s, leaseTTL: 1s", 1)), plugins)
	require.NoError(t, err, "with leaseTTL set as the hint says, the file is fine")
}

// TestTLSFilesAreChecked: validation reads the probe's CA and client
// certificate files, resolving relative paths against the experiment
// file's directory, and puts each problem at the field that names the file.
func TestTLSFilesAreChecked(t *testing.T) {
	dir := t.TempDir()
	good, err := filepath.Abs("testdata/good/tls")
	require.NoError(t, err)
	for _, f := range []string{"ca.pem", "client.pem", "client-key.pem"} {
		data, err := os.ReadFile(filepath.Join(good, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "not.pem"), []byte("not a certificate\n"), 0o600))
	load := func(tlsLine string) (*experiments.Experiment, error) {
		src := strings.Replace(minimal("    - checkout.status == 200\n"),
			"checkout: {http: {url: http://127.0.0.1:8080/health}}",
			"checkout: {http: {url: https://127.0.0.1:8443/health, "+tlsLine+"}}", 1)
		path := filepath.Join(dir, "exp.yaml")
		require.NoError(t, os.WriteFile(path, []byte(src), 0o600))
		return experiments.Load(path, plugins)
	}

	exp, err := load("tls: {ca: ca.pem, cert: client.pem, key: client-key.pem}")
	require.NoError(t, err, "files next to the experiment file are found whatever the working directory")
	require.Equal(t, filepath.Join(dir, "ca.pem"), exp.Spec.Probes["checkout"].HTTP.TLS.CA, "the probe reads the path validation checked")

	for name, tc := range map[string]struct {
		tls, path, message string
	}{
		"missing ca":  {"tls: {ca: nope.pem}", "spec.probes.checkout.http.tls.ca", "nope.pem: no such file or directory"},
		"ca not pem":  {"tls: {ca: not.pem}", "spec.probes.checkout.http.tls.ca", "holds no PEM certificate"},
		"missing key": {"tls: {cert: client.pem, key: nope.pem}", "spec.probes.checkout.http.tls.key", "nope.pem: no such file or directory"},
		"not a pair":  {"tls: {cert: ca.pem, key: client-key.pem}", "spec.probes.checkout.http.tls.cert", "do not load as a pair"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(tc.tls)
			var fe *experiments.FileError
			require.ErrorAs(t, err, &fe)
			require.Len(t, fe.Problems, 1, fe.Error())
			require.Equal(t, tc.path, fe.Problems[0].Path)
			require.Contains(t, fe.Problems[0].Message, tc.message)
			require.Equal(t, 11, fe.Problems[0].Pos.Line, "the problem is on the line of the probe")
			require.Positive(t, fe.Problems[0].Pos.Col)
		})
	}
}
