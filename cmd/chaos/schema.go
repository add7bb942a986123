package main

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
	"github.com/chaos-run/chaos/reports"
)

// schemaCommand prints the JSON Schema of experiment files, with the
// parameter schemas of the built-in plugins, for editors (the
// yaml-language-server modeline) and pipelines. experiments/schema.json is
// a copy of what it prints.
func schemaCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "schema",
		Usage: "print the JSON Schema (draft 2020-12) of experiment files (or, with --kind, of schedules and game days)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "kind", Value: experiments.KindExperiment, Usage: "the `KIND` of file: Experiment, Schedule or GameDay"},
		},
		Action: func(c *cli.Context) error {
			b, err := experiments.JSONSchemaOf(c.String("kind"), experiments.SchemaOptions{PluginParams: builtinParamSchemas()})
			if errors.Is(err, experiments.ErrUnknownKind) {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "--kind: " + err.Error()}
			}
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		},
	}
}

// builtinParamSchemas are the `with` schemas of the built-in plugins, asked
// in process: describing a plugin touches nothing.
func builtinParamSchemas() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for name, mk := range builtin.Faults() {
		out[name] = mk().Describe().ParamsSchema
	}
	return out
}
