package deliver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/smtptest"
	"github.com/chaos-run/chaos/reports"
	"github.com/chaos-run/chaos/reports/deliver"
)

const smtpPassword = "pw-Sm7p-s3cr3t-Hk4Jq9Vb2"

func startSMTP(t *testing.T, o smtptest.Options) *smtptest.Server {
	t.Helper()
	s, err := smtptest.Start(o)
	require.NoError(t, err, "start the test SMTP server")
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// emailYAML asks for the report by e-mail through addr, logging in as
// chaos with ${env:SMTP_PASSWORD}.
func emailYAML(addr string) string {
	return `  report:
    delivery:
      email:
        to: [web-team@example.com]
        smtp: {address: "` + addr + `", from: chaos@example.com, username: chaos, password: "${env:SMTP_PASSWORD}"}
`
}

// parts reads a multipart message into its parts' content types and
// decoded bodies, in order.
func parts(t *testing.T, data []byte) (*mail.Message, []string, [][]byte, []string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	require.NoError(t, err, "the mail parses")
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/mixed", mt, "the report and its attachments are one multipart message")
	r := multipart.NewReader(m.Body, params["boundary"])
	var types, names []string
	var bodies [][]byte
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p) // multipart decodes quoted-printable itself
		require.NoError(t, err)
		if p.Header.Get("Content-Transfer-Encoding") == "base64" {
			b, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(string(b), "\r\n", ""))
			require.NoError(t, err, "an attachment is valid base64")
		}
		types = append(types, p.Header.Get("Content-Type"))
		names = append(names, p.FileName())
		bodies = append(bodies, b)
	}
	return m, types, bodies, names
}

func TestEmailOverSTARTTLSWithAuth(t *testing.T) {
	s := startSMTP(t, smtptest.Options{Username: "chaos", Password: smtpPassword})
	exp := loadExperiment(t, "", emailYAML(s.Addr))
	// HTML (or anything else the report directory got) is attached as it
	// is on disk.
	dir := t.TempDir()
	html := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(html, []byte("<html><body>report</body></html>"), 0o644))
	rec := failedRecord()
	d := &deliver.Deliverer{RootCAs: s.Pool}

	out := d.Deliver(context.Background(), exp, rec, []string{filepath.Join(dir, "report.md"), filepath.Join(dir, "report.json"), html})

	require.Len(t, out, 1)
	require.True(t, out[0].OK, "the mail is delivered: %+v", out[0])
	require.Equal(t, reports.ChannelEmail, out[0].Channel)
	require.Equal(t, "web-team@example.com via "+s.Addr, out[0].Target)
	require.Equal(t, 1, out[0].Attempts)

	msgs := s.Messages()
	require.Len(t, msgs, 1, "the server received one message")
	got := msgs[0]
	require.True(t, got.TLS, "the message came over STARTTLS")
	require.Equal(t, "chaos", got.User, "the client logged in with AUTH PLAIN")
	require.Equal(t, "chaos@example.com", got.From)
	require.Equal(t, []string{"web-team@example.com"}, got.To)
	require.NotContains(t, string(got.Data), smtpPassword, "the mail never holds the password")

	m, types, bodies, names := parts(t, got.Data)
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	require.NoError(t, err)
	require.Equal(t, "[chaos] deliver-test: failed (steady-state-broke)", subject)
	require.Len(t, types, 3, "text, JSON and HTML")
	require.True(t, strings.HasPrefix(types[0], "text/plain"), "the Markdown report is the text of the mail: %s", types[0])
	var md bytes.Buffer
	require.NoError(t, reports.Markdown{}.Render(&md, rec))
	require.Equal(t, md.String(), strings.ReplaceAll(string(bodies[0]), "\r\n", "\n"), "the Markdown report is inlined whole (mail text has CRLF lines)")
	require.Equal(t, reports.JSONFile, names[1], "the JSON report is attached")
	var js bytes.Buffer
	require.NoError(t, reports.JSON{}.Render(&js, rec))
	require.Equal(t, js.String(), string(bodies[1]), "the attachment is the JSON report")
	require.Equal(t, "report.html", names[2], "the HTML report is attached when there is one")
	require.Equal(t, "<html><body>report</body></html>", string(bodies[2]))
}

func TestEmailWrongPasswordIsNotRetried(t *testing.T) {
	s := startSMTP(t, smtptest.Options{Username: "chaos", Password: "another-password"})
	exp := loadExperiment(t, "", emailYAML(s.Addr))
	out := (&deliver.Deliverer{RootCAs: s.Pool}).Deliver(context.Background(), exp, failedRecord(), nil)
	require.False(t, out[0].OK)
	require.Equal(t, 1, out[0].Attempts, "a 5xx answer to AUTH is final: %s", out[0].Error)
	require.Contains(t, out[0].Error, "auth", out[0].Error)
	require.NotContains(t, out[0].Error, smtpPassword, "the error never holds the password")
	require.Empty(t, s.Messages())
}

func TestEmailUntrustedCertificateIsRefused(t *testing.T) {
	s := startSMTP(t, smtptest.Options{Username: "chaos", Password: smtpPassword})
	exp := loadExperiment(t, "", emailYAML(s.Addr))
	// The system's CAs do not know the test CA.
	out := (&deliver.Deliverer{}).Deliver(context.Background(), exp, failedRecord(), nil)
	require.False(t, out[0].OK)
	require.Equal(t, 1, out[0].Attempts, "a certificate that does not verify is not retried")
	require.Contains(t, out[0].Error, "starttls")
	require.Empty(t, s.Messages(), "nothing is sent over a connection that is not verified")
}

func TestEmailToTheOwnerUsesTheConfiguredServer(t *testing.T) {
	s := startSMTP(t, smtptest.Options{Username: "ops", Password: smtpPassword})
	exp := loadExperiment(t, "", "")
	exp.Metadata.Owner.Email = "owner@example.com"
	d := &deliver.Deliverer{RootCAs: s.Pool, SMTP: deliver.Server{Address: s.Addr, Username: plainSecret("ops"), Password: plainSecret(smtpPassword)}}
	out := d.Deliver(context.Background(), exp, failedRecord(), nil)
	require.True(t, out[0].OK, "%+v", out[0])
	require.Equal(t, []string{"owner@example.com"}, s.Messages()[0].To)
	require.Equal(t, "chaos@127.0.0.1", s.Messages()[0].From, "the default sender is chaos@ the server's host")
}

func TestEmailWithoutAServerSaysSo(t *testing.T) {
	exp := loadExperiment(t, "", "")
	exp.Metadata.Owner.Email = "owner@example.com"
	out := (&deliver.Deliverer{}).Deliver(context.Background(), exp, failedRecord(), nil)
	require.Len(t, out, 1, "the owner's address is not forgotten silently")
	require.False(t, out[0].OK)
	require.Equal(t, 0, out[0].Attempts)
	require.Contains(t, out[0].Error, deliver.ErrNoSMTPServer.Error())
	require.True(t, out[0].Skipped, "an owner's address alone, with no server, is skipped and said so, not a failed delivery")

	exp.Spec.Report.Delivery.Email = &experiments.EmailDelivery{To: []string{"team@example.com"}}
	out = (&deliver.Deliverer{}).Deliver(context.Background(), exp, failedRecord(), nil)
	require.Len(t, out, 1)
	require.False(t, out[0].OK)
	require.False(t, out[0].Skipped, "a file that asks for e-mail and names no server is a failed delivery")
}
