package main

import (
	"encoding/json"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/plugins/builtin"
)

// schemaCommand prints the JSON Schema of experiment files, with the
// parameter schemas of the built-in plugins, for editors (the
// yaml-language-server modeline) and pipelines. experiments/schema.json is
// a copy of what it prints.
func schemaCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "schema",
		Usage: "print the JSON Schema (draft 2020-12) of experiment files",
		Action: func(*cli.Context) error {
			b, err := experiments.JSONSchema(experiments.SchemaOptions{PluginParams: builtinParamSchemas()})
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
