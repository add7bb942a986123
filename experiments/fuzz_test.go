package experiments_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaos-run/chaos/experiments"
)

// seedFiles are every file the tests have: examples, good and bad files.
func seedFiles(f *testing.F) [][]byte {
	var out [][]byte
	for _, g := range []string{"examples/*.yaml", "testdata/good/*.yaml", "testdata/bad/*.yaml", "testdata/*.yaml"} {
		files, err := filepath.Glob(g)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// FuzzParse feeds the parser, the validator and the expression compiler
// anything at all. Whatever the input, Parse must not panic; what it
// rejects it rejects with a *FileError whose every problem has a position;
// and what it accepts must evaluate, against observations and history,
// without panicking either.
//
//	go test -run XXX -fuzz FuzzParse -fuzztime 10m ./experiments/
func FuzzParse(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	opts := experiments.Options{Plugins: []string{"latency", "podkill", "cpustress"}, LookupEnv: lookupSecret}
	f.Fuzz(func(t *testing.T, data []byte) {
		exp, err := experiments.Parse("fuzz.yaml", data, opts)
		if err != nil {
			var fe *experiments.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse failed with %T, not a *FileError: %v", err, err)
			}
			if len(fe.Problems) == 0 {
				t.Fatal("a FileError with no problem")
			}
			for _, p := range fe.Problems {
				if p.Pos.Line < 1 || p.Pos.Col < 1 {
					t.Fatalf("a problem without a position: %q", fe.Format(p))
				}
			}
			return
		}
		evaluateAll(t, exp)
	})
}

// FuzzExpression feeds the expression compiler anything, in a file that is
// otherwise valid.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		`checkout.status == 200 && checkout.latency < duration("300ms")`,
		`failureRatio("checkout", "30s") > 0.05`,
		`consecutiveFailures(checkout) >= 3`,
		`percentile(checkout.latency, 99, "30s") < duration("1s")`,
		`percentile("db.latency", 50.5, "1m") > duration("1ms")`,
		`checkout.latency < 300`,
		`len(filter([1, 2, 3], # > 1)) == 2`,
		`job.exitCode == 0 && job.stdout contains "ok"`,
		`let x = checkout.status; x == 200`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		file := withSteady(`'` + escapeSingle(src) + `'`)
		exp, err := experiments.Parse("fuzz.yaml", []byte(file), plugins)
		if err != nil {
			var fe *experiments.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse failed with %T, not a *FileError: %v", err, err)
			}
			return
		}
		evaluateAll(t, exp)
	})
}

func escapeSingle(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '\'' {
			out = append(out, '\'')
		}
		out = append(out, r)
	}
	return string(out)
}

// evaluateAll evaluates every expression of a valid experiment against an
// observation of each probe's kind and a little history. Errors are fine;
// panics are not.
func evaluateAll(t *testing.T, exp *experiments.Experiment) {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	latest := map[string]experiments.Observation{}
	h := exp.NewHistory()
	for name, p := range exp.Spec.Probes {
		var o experiments.Observation
		switch p.Kind() {
		case experiments.ProbeHTTP:
			o = experiments.HTTPObservation{OK: true, Status: 200, Latency: time.Millisecond}
		case experiments.ProbeTCP:
			o = experiments.TCPObservation{OK: true, Latency: time.Millisecond}
		case experiments.ProbePrometheus:
			o = experiments.PrometheusObservation{OK: true, Value: 1, Vector: []experiments.PrometheusSample{{Labels: map[string]string{"a": "b"}, Value: 1}}}
		case experiments.ProbeKubernetes:
			o = experiments.KubernetesObservation{OK: true, Desired: 2, Ready: 2}
		case experiments.ProbeExec:
			o = experiments.ExecObservation{OK: true, Stdout: "ok"}
		}
		latest[name] = o
		for i := 0; i < 5; i++ {
			h.Add(name, now.Add(-time.Duration(i)*time.Second), o)
			h.Add(name, now.Add(-time.Duration(i)*time.Second), p.FailedObservation("fuzz"))
		}
	}
	for _, list := range [][]*experiments.Expression{exp.Spec.SteadyState, exp.Spec.Budget.AbortWhen} {
		for _, x := range list {
			_, _ = x.Eval(latest, h, now)
			_, _ = x.Eval(nil, nil, now)
		}
	}
}
