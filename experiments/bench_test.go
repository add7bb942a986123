package experiments_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/chaos-run/chaos/experiments"
)

// thousandFiles writes 1,000 experiment files, copies of the examples and
// of the files that use every field, each with its own name, and returns
// their paths. The TLS files they name (relative to the file) are copied
// beside them.
func thousandFiles(b *testing.B) []string {
	b.Helper()
	var sources [][]byte
	dir := b.TempDir()
	for _, tlsDir := range []string{"examples/tls", "testdata/good/tls"} {
		if err := os.CopyFS(filepath.Join(dir, "tls"), os.DirFS(tlsDir)); err != nil && !errors.Is(err, fs.ErrExist) {
			b.Fatal(err)
		}
	}
	for _, g := range []string{"examples/*.yaml", "testdata/good/*.yaml"} {
		files, err := filepath.Glob(g)
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			sources = append(sources, data)
		}
	}
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("experiment-%04d.yaml", i))
		if err := os.WriteFile(paths[i], sources[i%len(sources)], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths
}

// BenchmarkValidate1000 is `chaos validate --offline` on 1,000 files: read,
// parse, decode, validate, compile every expression. The goal is under 1 s
// per op on the development machine. Its anchor is
// BenchmarkYAMLUnmarshal1000: reading the same files into map[string]any.
func BenchmarkValidate1000(b *testing.B) {
	paths := thousandFiles(b)
	opts := experiments.Options{LookupEnv: lookupSecret}
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			if _, err := experiments.Load(p, opts); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkYAMLUnmarshal1000 is the anchor of BenchmarkValidate1000: the
// least any YAML tool does with the same 1,000 files.
func BenchmarkYAMLUnmarshal1000(b *testing.B) {
	paths := thousandFiles(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				b.Fatal(err)
			}
			var m map[string]any
			if err := yaml.Unmarshal(data, &m); err != nil {
				b.Fatal(err)
			}
		}
	}
}
