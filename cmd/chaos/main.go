// Command chaos runs chaos-engineering experiments. This package is wiring
// only: flags and output. The lifecycle is in engine, the file format in
// experiments, the faults in plugins.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}
