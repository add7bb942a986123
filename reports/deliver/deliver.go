// Package deliver sends a run's report to the team that owns the service,
// beyond the report files: a Slack-compatible webhook and e-mail over SMTP.
//
// Delivery is told, never decisive: whatever happens here, the verdict and
// the exit code stay what the run decided. Every network call has a
// deadline and every retry loop a bound, so a dead webhook or mail server
// delays the end of a run by at most Retry.Total per channel. Nothing here
// prints or records a secret: targets show secrets as ***, and every error
// is scrubbed of the file's secrets and the mail server's credentials.
package deliver

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"sync"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// Why a delivery did not get there.
var (
	// ErrRejected means the server answered that the request itself is
	// wrong (an HTTP 4xx other than 429, an SMTP 5xx): trying again would
	// not help.
	ErrRejected = errors.New("rejected")
	// ErrOutOfTime means the attempts allowed, or the time allowed
	// (Retry.Total), ran out before the delivery got through.
	ErrOutOfTime = errors.New("gave up")
	// ErrNoSMTPServer means a file asks for e-mail but names no mail server
	// and none was given (--smtp-server, CHAOS_SMTP_SERVER).
	ErrNoSMTPServer = errors.New("no smtp server configured")
	// ErrNoSTARTTLS means a mail server that is not on this machine does
	// not offer STARTTLS: the report and the password would cross the
	// network in clear, so chaos does not send them.
	ErrNoSTARTTLS = errors.New("the mail server does not offer STARTTLS")
)

// Server is a mail server to send through.
type Server struct {
	// Address is host:port (smtp.example.com:587).
	Address string
	// From is the sender; default chaos@ the server's domain.
	From string
	// Username and Password log in with AUTH PLAIN, only over TLS or to a
	// server on this machine; empty sends without logging in.
	Username, Password experiments.Secret
}

// Deliverer sends reports. The zero value works: it uses the real clock,
// the default HTTP transport, the system's CA certificates and the Retry
// defaults, and e-mails only files that name their mail server.
type Deliverer struct {
	// Clock times the waits between attempts; default the real clock.
	Clock clock.Clock
	// HTTP posts webhooks; nil is a client on http.DefaultTransport. Its
	// own Timeout is not needed: each attempt has Retry.AttemptTimeout.
	HTTP *http.Client
	// Retry bounds the attempts of each delivery.
	Retry Retry
	// SMTP is the mail server for files that name none in
	// report.delivery.email.smtp (the --smtp-* flags).
	SMTP Server
	// RootCAs verify the mail server's certificate after STARTTLS; nil is
	// the system's pool.
	RootCAs *x509.CertPool
}

// Deliver sends rec to every owner channel exp names (metadata.owner's
// webhook and email, report.delivery's webhook and email), concurrently,
// and returns one entry per channel, in a stable order: webhooks first.
// files are the report files already written for rec; besides the
// Markdown (inlined) and JSON reports rendered from rec, each of them that
// is not Markdown or JSON (HTML, JUnit) is attached to the mail. A nil exp
// (a file that did not load: no owner is known) delivers nothing.
//
// ctx bounds everything; the Runner passes one that an interrupted run has
// not cancelled, since the owners most want to hear of those runs.
func (d *Deliverer) Deliver(ctx context.Context, exp *experiments.Experiment, rec *reports.Record, files []string) []reports.Delivery {
	if exp == nil || rec == nil {
		return nil
	}
	// The file's ${env:...} values, and the configured server's password
	// (from the environment, never the command line) and its username
	// when that came from the environment too.
	secrets := exp.Secrets()
	for _, s := range []experiments.Secret{d.SMTP.Username, d.SMTP.Password} {
		if v := s.Reveal(); v != "" && (s.HoldsSecret() || s == d.SMTP.Password) {
			secrets = append(secrets, v)
		}
	}
	redact := experiments.NewRedactor(secrets).Redact

	var jobs []func() reports.Delivery
	for _, hook := range webhooks(exp) {
		jobs = append(jobs, func() reports.Delivery { return d.webhook(ctx, hook, rec, files, redact) })
	}
	if m, ok := d.mail(exp); ok {
		jobs = append(jobs, func() reports.Delivery {
			out := d.email(ctx, m, rec, files, redact)
			// An owner's address alone is where to write, not a request
			// to: without a mail server, and with no e-mail delivery in
			// the file, the mail is skipped, and said so, not failed.
			out.Skipped = m.server.Address == "" && exp.Spec.Report.Delivery.Email == nil
			return out
		})
	}
	out := make([]reports.Delivery, len(jobs))
	var wg sync.WaitGroup
	for i, job := range jobs {
		wg.Go(func() { out[i] = job() })
	}
	wg.Wait()
	return out
}

// webhooks are the distinct webhooks the file names, the owner's first.
func webhooks(exp *experiments.Experiment) []experiments.Secret {
	var out []experiments.Secret
	seen := map[string]bool{}
	for _, h := range []experiments.Secret{exp.Metadata.Owner.Webhook, exp.Spec.Report.Delivery.Webhook} {
		if h.IsZero() || seen[h.Reveal()] {
			continue
		}
		seen[h.Reveal()] = true
		out = append(out, h)
	}
	return out
}

// mailing is one message: who gets it and through which server.
type mailing struct {
	to     []string
	server Server
}

// mail is the message the file asks for, if any: report.delivery.email's
// recipients and the owner's address, through the file's server when it
// names one and the configured one otherwise.
func (d *Deliverer) mail(exp *experiments.Experiment) (mailing, bool) {
	var m mailing
	seen := map[string]bool{}
	add := func(addr string) {
		if addr != "" && !seen[addr] {
			seen[addr] = true
			m.to = append(m.to, addr)
		}
	}
	m.server = d.SMTP
	if e := exp.Spec.Report.Delivery.Email; e != nil {
		for _, a := range e.To {
			add(a)
		}
		if e.SMTP.Address != "" {
			m.server = Server{Address: e.SMTP.Address, From: e.SMTP.From, Username: e.SMTP.Username, Password: e.SMTP.Password}
		}
	}
	add(exp.Metadata.Owner.Email)
	return m, len(m.to) > 0
}
