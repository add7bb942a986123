package main

import (
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/chaos-run/chaos/engine"
	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/reports/deliver"
)

// smtpPasswordEnv holds the configured mail server's password. It is read
// from the environment only: a flag's value is on the command line, which
// every user of the machine can read in /proc.
const smtpPasswordEnv = "CHAOS_SMTP_PASSWORD"

// outputFlags are run's flags for what it shows and where it delivers.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json: the form of the log lines on stderr (when stdout is not a terminal, every phase, fault and problem is a log line)"},
		&cli.StringFlag{Name: "smtp-server", EnvVars: []string{"CHAOS_SMTP_SERVER"}, Usage: "`HOST:PORT` of the mail server for files that name none (owner.email); the password is read from $" + smtpPasswordEnv},
		&cli.StringFlag{Name: "smtp-from", EnvVars: []string{"CHAOS_SMTP_FROM"}, Usage: "sender `ADDRESS` of report mails (default chaos@ the server's domain)"},
		&cli.StringFlag{Name: "smtp-username", EnvVars: []string{"CHAOS_SMTP_USERNAME"}, Usage: "`USER` to log in to the mail server as (AUTH PLAIN, only over STARTTLS or to this machine)"},
		&cli.StringFlag{Name: "smtp-ca", EnvVars: []string{"CHAOS_SMTP_CA"}, Usage: "PEM `FILE` of CA certificates trusted for the mail server, besides the system's"},
		&cli.DurationFlag{Name: "delivery-timeout", Value: time.Minute, Usage: "how long each webhook or mail delivery may keep retrying"},
	}
}

// newDeliverer is the Deliverer of run's flags.
func newDeliverer(c *cli.Context) (*deliver.Deliverer, error) {
	d := &deliver.Deliverer{
		Retry: deliver.Retry{Total: c.Duration("delivery-timeout")},
		SMTP: deliver.Server{
			Address:  c.String("smtp-server"),
			From:     c.String("smtp-from"),
			Username: experiments.Plain(c.String("smtp-username")),
			Password: experiments.Plain(os.Getenv(smtpPasswordEnv)),
		},
	}
	if ca := c.String("smtp-ca"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--smtp-ca %s: %v", ca, err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--smtp-ca %s: no PEM certificate in it", ca)}
		}
		d.RootCAs = pool
	}
	return d, nil
}

// logHandler is the slog handler of --log-format.
func logHandler(format string, w io.Writer, level slog.Level) (slog.Handler, error) {
	o := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.NewTextHandler(w, o), nil
	case "json":
		return slog.NewJSONHandler(w, o), nil
	}
	return nil, &exitError{code: reports.Invalid.ExitCode(), msg: fmt.Sprintf("--log-format %q: use text or json", format)}
}

// progressFor is how run shows its progress: a live view when stdout is a
// terminal, log lines on stderr otherwise. The view, when there is one,
// must be closed before the verdict is printed; logs is where the run's
// own log lines go.
func progressFor(stdout, stderr io.Writer, format string, level slog.Level) (p engine.Progress, logs io.Writer, closeView func(), err error) {
	h, err := logHandler(format, stderr, level)
	if err != nil {
		return nil, nil, nil, err
	}
	if format == "text" && isTerminal(stdout) {
		v := newLiveView(stdout, stderr)
		return v, v, v.Close, nil
	}
	return logProgress{log: slog.New(h)}, stderr, func() {}, nil
}

// printDeliveries says where the report went besides the files: on stdout
// when it got there, on stderr when it did not (the verdict stands).
func printDeliveries(stdout, stderr io.Writer, ds []reports.Delivery) {
	for _, d := range ds {
		n := "attempts"
		if d.Attempts == 1 {
			n = "attempt"
		}
		if d.OK {
			_, _ = fmt.Fprintf(stdout, "delivered: %s %s (%d %s)\n", d.Channel, d.Target, d.Attempts, n)
			continue
		}
		if d.Skipped {
			_, _ = fmt.Fprintf(stderr, "chaos: not sent by %s to %s: %s\n", d.Channel, d.Target, d.Error)
			continue
		}
		_, _ = fmt.Fprintf(stderr, "chaos: delivery failed: %s %s: %s (%d %s; the verdict stands)\n", d.Channel, d.Target, d.Error, d.Attempts, n)
	}
}
