package experiments_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

var update = flag.Bool("update", false, "rewrite the golden files (testdata/bad/*.golden, schema.json) from what the code says now")

// testSecrets are the environment the test files are loaded in. Their values
// are secrets: no output may ever show one.
var testSecrets = map[string]string{
	"TOKEN":            "tok-s3cr3t-0001",
	"PROM_PASSWORD":    "prom-s3cr3t-0002",
	"SMTP_PASSWORD":    "smtp-s3cr3t-0003",
	"CATALOG_TOKEN":    "catalog-s3cr3t-0004",
	"PROMETHEUS_TOKEN": "prometheus-s3cr3t-0005",
	"REDIS_PASSWORD":   "redis-s3cr3t-0006",
	// A secret that makes a bad URL: the message about it must not show it.
	"SECRET_URL": "ftp://s3cr3t-host-0007.example/x",
	// Set, but empty: as an unconfigured CI secret arrives.
	"EMPTY_TOKEN": "",
}

func lookupSecret(name string) (string, bool) {
	v, ok := testSecrets[name]
	return v, ok
}

// badOptions are those of `chaos validate --offline` with the built-in
// plugins of today.
var badOptions = experiments.Options{Plugins: []string{"latency"}, LookupEnv: lookupSecret}

func requireNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for name, v := range testSecrets {
		if v == "" {
			continue
		}
		require.NotContainsf(t, text, v, "%s shows the value of ${env:%s}: secrets must never appear in output", what, name)
	}
}

// TestBadFiles checks every file of testdata/bad against its golden file:
// each holds one kind of mistake, and its golden file is exactly what
// `chaos validate` says about it. `go test -update` rewrites them; read the
// diff as a user would read the messages.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 50, "the issue asks for at least 50 kinds of mistakes")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(data), "# "), "a bad file starts with a comment saying what its mistake is")
			_, err = experiments.Parse(filepath.Base(f), data, badOptions)
			require.ErrorIs(t, err, experiments.ErrInvalid, "a bad file must not load")
			var fe *experiments.FileError
			require.ErrorAs(t, err, &fe)
			require.NotEmpty(t, fe.Problems)
			for _, p := range fe.Problems {
				require.Positive(t, p.Pos.Line, "every problem has a line: %s", fe.Format(p))
				require.Positive(t, p.Pos.Col, "every problem has a column: %s", fe.Format(p))
			}
			got := fe.Error() + "\n"
			requireNoSecret(t, "the problems of "+f, got)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "no golden file: run go test ./experiments -run TestBadFiles -update")
			require.Equal(t, string(want), got, "the problems of %s changed; if that is intended, go test -update and review the diff", f)
		})
	}
}

// TestBadFilesAreDistinct keeps the corpus honest: no two bad files may
// produce the same problems (the same messages about the same fields), or
// one of them tests nothing new.
func TestBadFilesAreDistinct(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	require.NoError(t, err)
	seen := map[string]string{}
	for _, f := range files {
		_, err := experiments.Load(f, badOptions)
		var fe *experiments.FileError
		require.ErrorAs(t, err, &fe)
		var keys []string
		for _, p := range fe.Problems {
			keys = append(keys, p.Path+": "+p.Message)
		}
		key := strings.Join(keys, "\n")
		if other, dup := seen[key]; dup {
			t.Errorf("%s and %s say the same: one kind of mistake per file", f, other)
		}
		seen[key] = f
	}
}

// TestGoodFiles loads the files of testdata/good, which use every field of
// the format, targets of every kind and plugins that do not exist yet.
func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		_, err := experiments.Load(f, experiments.Options{LookupEnv: lookupSecret})
		require.NoError(t, err, "%s must load", f)
	}
}
