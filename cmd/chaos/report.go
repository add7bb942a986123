package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/reports"
)

// reportCommand re-renders a past run's record in another format.
func reportCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "re-render a past run's report.json as html, md, junit or json",
		ArgsUsage: "RECORD.json",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "md", Usage: "html, md (markdown), junit or json"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` instead of stdout"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "report takes exactly one record (a run's report.json)"}
			}
			f, err := reports.LookupFormat(c.String("format"))
			if err != nil {
				return &exitError{code: reports.Invalid.ExitCode(), msg: "--format " + err.Error()}
			}
			rec, err := reports.ReadRecord(c.Args().First())
			if err != nil {
				code := reports.Invalid.ExitCode()
				if !errors.Is(err, reports.ErrNotRecord) && !errors.Is(err, os.ErrNotExist) {
					code = reports.Error.ExitCode()
				}
				return &exitError{code: code, msg: fmt.Sprintf("read record: %v", err)}
			}
			var buf bytes.Buffer
			if err := f.Renderer.Render(&buf, rec); err != nil {
				return &exitError{code: reports.Error.ExitCode(), msg: err.Error()}
			}
			if out := c.String("output"); out != "" {
				if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
					return &exitError{code: reports.Error.ExitCode(), msg: fmt.Sprintf("write %s: %v", out, err)}
				}
				return nil
			}
			_, err = stdout.Write(buf.Bytes())
			return err
		},
	}
}
