package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdNoSecret fails if the value of an environment variable of the script
// shows, in any form, in any of the files named (a directory is walked, so
// a report directory or the state directory is checked whole; stdout and
// stderr are those of the last command):
//
//	nosecret NAME file|dir|stdout|stderr...
//
// A form is the value as it is, JSON-escaped, Go-quoted (%q and %+q) or
// YAML single-quoted; any 8-byte piece of a form is a leak too, so a value
// cut short for a message is caught.
func cmdNoSecret(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! nosecret")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: nosecret NAME file|dir|stdout|stderr...")
	}
	secret := ts.Getenv(args[0])
	if len(secret) < 8 {
		ts.Fatalf("nosecret: $%s must be set, and 8 bytes or longer, to be looked for", args[0])
	}
	pieces := secretPieces(secret)
	check := func(name, text string) {
		for _, p := range pieces {
			if i := strings.Index(text, p); i >= 0 {
				from, to := max(0, i-30), min(len(text), i+len(p)+30)
				ts.Fatalf("%s shows a piece of $%s (%q): ...%s...", name, args[0], p, text[from:to])
			}
		}
	}
	for _, a := range args[1:] {
		if a == "stdout" || a == "stderr" {
			check(a, ts.ReadFile(a))
			continue
		}
		root := ts.MkAbs(a)
		n := 0
		ts.Check(filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n++
			check(path, string(data))
			return nil
		}))
		if n == 0 {
			ts.Fatalf("nosecret: %s has no file to look in", a)
		}
	}
}

// secretPieces are the forms of secret and every 8-byte piece of them.
func secretPieces(secret string) []string {
	inner := func(q string) string { return q[1 : len(q)-1] }
	j, _ := json.Marshal(secret)
	forms := []string{
		secret,
		inner(string(j)),
		inner(strconv.Quote(secret)),
		inner(strconv.QuoteToASCII(secret)),
		strings.ReplaceAll(secret, "'", "''"),
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range forms {
		for i := 0; i+8 <= len(f); i++ {
			if p := f[i : i+8]; !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}
