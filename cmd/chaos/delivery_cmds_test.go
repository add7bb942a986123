package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/chaos-run/chaos/internal/smtptest"
)

// smtpKey holds a script's test mail server.
type smtpKey struct{}

type smtpHolder struct{ s *smtptest.Server }

// cmdWebhook starts a real HTTP server for the script that answers each
// request with the next of the codes given (the last one repeats), and
// writes each body it receives to DIR/N.json:
//
//	webhook NAME DIR CODE...
//
// $NAME is set to the server's base URL.
func cmdWebhook(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: webhook NAME DIR CODE...")
	}
	var codes []int
	for _, a := range args[2:] {
		c, err := strconv.Atoi(a)
		ts.Check(err)
		codes = append(codes, c)
	}
	dir := ts.MkAbs(args[1])
	ts.Check(os.MkdirAll(dir, 0o755))
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.json", i)), body, 0o644)
		w.WriteHeader(codes[min(i, len(codes))-1])
	}))
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
}

// cmdSMTPServer starts a real SMTP server for the script (STARTTLS with a
// test CA, AUTH PLAIN), sets $SMTP_ADDR to its address and writes the CA's
// certificate to FILE:
//
//	smtpserver USER PASSWORD_VAR FILE
func cmdSMTPServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: smtpserver USER PASSWORD_VAR CAFILE")
	}
	s, err := smtptest.Start(smtptest.Options{Username: args[0], Password: ts.Getenv(args[1])})
	ts.Check(err)
	ts.Defer(func() { _ = s.Close() })
	ts.Value(smtpKey{}).(*smtpHolder).s = s
	ts.Setenv("SMTP_ADDR", s.Addr)
	ts.Check(os.WriteFile(ts.MkAbs(args[2]), s.CAPEM, 0o644))
}

// cmdMailbox writes every message the script's mail server accepted to
// DIR/N.eml, with a first line saying who logged in and whether it came
// over TLS, and fails when there is none:
//
//	mailbox DIR
func cmdMailbox(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mailbox DIR")
	}
	h := ts.Value(smtpKey{}).(*smtpHolder)
	if h.s == nil {
		ts.Fatalf("mailbox: no smtpserver started")
	}
	msgs := h.s.Messages()
	if len(msgs) == 0 {
		ts.Fatalf("mailbox: the server received no message")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	for i, m := range msgs {
		head := fmt.Sprintf("X-Test-Login: %s tls=%v\r\n", m.User, m.TLS)
		ts.Check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.eml", i+1)), append([]byte(head), m.Data...), 0o644))
	}
}
