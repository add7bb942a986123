package deliver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// email sends rec to m.to through m.server, with retries.
func (d *Deliverer) email(ctx context.Context, m mailing, rec *reports.Record, files []string, redact func(string) string) reports.Delivery {
	out := reports.Delivery{Channel: reports.ChannelEmail, Target: strings.Join(m.to, ", ")}
	if m.server.Address == "" {
		out.Error = ErrNoSMTPServer.Error() + ": set --smtp-server or CHAOS_SMTP_SERVER, or report.delivery.email.smtp in the file"
		return out
	}
	out.Target += " via " + m.server.Address
	host, _, err := net.SplitHostPort(m.server.Address)
	if err != nil {
		out.Error = fmt.Sprintf("smtp server %q: %v", m.server.Address, err)
		return out
	}
	from := m.server.From
	if from == "" {
		from = "chaos@" + strings.TrimPrefix(host, "smtp.")
	}
	for _, a := range append([]string{from}, m.to...) {
		if _, err := mail.ParseAddress(a); err != nil {
			out.Error = fmt.Sprintf("address %q: %v", a, err)
			return out
		}
	}
	msg, err := Message(rec, files, from, m.to, clock.Or(d.Clock).Now())
	if err != nil {
		out.Error = redact(err.Error())
		return out
	}
	msg = []byte(redact(string(msg)))
	attempts, err := d.Retry.do(ctx, d.Clock, func(ctx context.Context) outcome {
		return d.send(ctx, m.server, host, from, m.to, msg)
	})
	out.Attempts = attempts
	if err != nil {
		out.Error = redact(err.Error())
		return out
	}
	out.OK = true
	return out
}

// send makes one attempt: connect, STARTTLS, AUTH PLAIN, the message.
// Every step shares the attempt's deadline.
func (d *Deliverer) send(ctx context.Context, s Server, host, from string, to []string, msg []byte) outcome {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return outcome{err: fmt.Errorf("connect: %w", err), again: true}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A cancelled ctx closes the connection, which ends any step waiting
	// on the server.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return classify("greeting", err)
	}
	defer func() { _ = c.Close() }()
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12}
		if err := c.StartTLS(cfg); err != nil {
			// A certificate that does not verify will not verify on the
			// next attempt either.
			var ce *tls.CertificateVerificationError
			if errors.As(err, &ce) {
				return outcome{err: fmt.Errorf("starttls: %w", err)}
			}
			return classify("starttls", err)
		}
	} else if !loopback(host) {
		return outcome{err: fmt.Errorf("%w (%s)", ErrNoSTARTTLS, s.Address)}
	}
	if user := s.Username.Reveal(); user != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return outcome{err: fmt.Errorf("%w: a username is set, but the server offers no AUTH", ErrRejected)}
		}
		if err := c.Auth(smtp.PlainAuth("", user, s.Password.Reveal(), host)); err != nil {
			return classify("auth", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return classify("mail from", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return classify("rcpt to "+r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classify("data", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify("data", err)
	}
	if err := w.Close(); err != nil {
		return classify("data", err)
	}
	if err := c.Quit(); err != nil {
		// The message was accepted at the end of DATA; a QUIT that fails
		// does not take it back.
		return outcome{}
	}
	return outcome{}
}

// classify says whether an SMTP step may succeed when tried again: a
// server's 4xx answer is temporary by definition, a 5xx is not, and a
// network error may be.
func classify(step string, err error) outcome {
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 400 && te.Code < 500 {
			return outcome{err: fmt.Errorf("%s: %w", step, err), again: true}
		}
		return outcome{err: fmt.Errorf("%s: %w: %w", step, ErrRejected, err)}
	}
	if strings.Contains(err.Error(), "unencrypted connection") {
		// net/smtp refuses to send a password in clear.
		return outcome{err: fmt.Errorf("%s: %w", step, err)}
	}
	return outcome{err: fmt.Errorf("%s: %w", step, err), again: true}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Message is the e-mail for rec: the Markdown report as its text, the JSON
// report attached, and each of files that is neither (HTML, JUnit)
// attached as it is on disk.
func Message(rec *reports.Record, files []string, from string, to []string, now time.Time) ([]byte, error) {
	var md, js bytes.Buffer
	if err := (reports.Markdown{}).Render(&md, rec); err != nil {
		return nil, fmt.Errorf("render markdown report: %w", err)
	}
	if err := (reports.JSON{}).Render(&js, rec); err != nil {
		return nil, fmt.Errorf("render json report: %w", err)
	}
	type attachment struct {
		name, ctype string
		data        []byte
	}
	atts := []attachment{{name: reports.JSONFile, ctype: "application/json", data: js.Bytes()}}
	for _, f := range files {
		switch filepath.Base(f) {
		case reports.JSONFile, reports.MarkdownFile:
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", f, err)
		}
		ctype := mime.TypeByExtension(filepath.Ext(f))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		atts = append(atts, attachment{name: filepath.Base(f), ctype: ctype, data: data})
	}

	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	subject := fmt.Sprintf("[chaos] %s: %s", rec.Experiment.Name, rec.Verdict)
	if rec.Cause != "" {
		subject += " (" + string(rec.Cause) + ")"
	}
	hdr := []struct{ k, v string }{
		{"From", from},
		{"To", strings.Join(to, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", oneLine(subject))},
		{"Date", now.Format(time.RFC1123Z)},
		{"Message-ID", fmt.Sprintf("<%s.%d@chaos>", oneLine(rec.RunID), now.UnixNano())},
		{"MIME-Version", "1.0"},
		{"Content-Type", "multipart/mixed; boundary=" + mw.Boundary()},
	}
	for _, h := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", h.k, h.v)
	}
	b.WriteString("\r\n")

	text, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, err
	}
	qp := quotedprintable.NewWriter(text)
	if _, err := qp.Write(md.Bytes()); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	for _, a := range atts {
		p, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {mime.FormatMediaType(a.ctype, map[string]string{"name": a.name})},
			"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": a.name})},
			"Content-Transfer-Encoding": {"base64"},
		})
		if err != nil {
			return nil, err
		}
		if err := writeBase64(p, a.data); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeBase64 writes data in lines of 76 characters, as MIME asks.
func writeBase64(w interface{ Write([]byte) (int, error) }, data []byte) error {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 0 {
		n := min(76, len(enc))
		if _, err := fmt.Fprintf(w, "%s\r\n", enc[:n]); err != nil {
			return err
		}
		enc = enc[n:]
	}
	return nil
}

func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
