package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/internal/clock"
	"github.com/chaos-run/chaos/reports"
)

// StatusError is a webhook's answer that was not a success.
type StatusError struct {
	Code int
	// Body is the start of what the server said, for the people reading
	// the record.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("webhook answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("webhook answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// maxText keeps a message inside what chat services accept (Slack cuts
// at 40,000 characters) and readable; the report has the rest.
const maxText = 3000

// WebhookMessage is the Slack-compatible body posted to a webhook: Slack,
// Mattermost, Rocket.Chat and Teams' Slack-compatible connectors all show
// `text`.
type WebhookMessage struct {
	Text string `json:"text"`
}

// NewWebhookMessage is the message for rec: the verdict line, its reason,
// what the verdict means, where it first broke, and where the reports are.
func NewWebhookMessage(rec *reports.Record, files []string) WebhookMessage {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*: %s", rec.Experiment.Name, rec.Verdict)
	if rec.Cause != "" {
		fmt.Fprintf(&b, " (%s)", rec.Cause)
	}
	if t := rec.Experiment.Owner.Team; t != "" {
		fmt.Fprintf(&b, " — for %s", t)
	}
	b.WriteString("\n")
	reason := rec.Reason
	if len(reason) > maxText {
		reason = reason[:maxText] + "…"
	}
	fmt.Fprintf(&b, "%s\n%s\n", reason, rec.Verdict.Meaning())
	s := reports.Summarize(rec)
	if br := s.FirstBreach; br != nil {
		what := br.Expression
		if what == "" {
			what = br.Source + ": " + br.Message
		}
		fmt.Fprintf(&b, "First broke at %s: %s\n", br.At.Round(time.Millisecond), what)
	}
	for _, l := range rec.Leftovers {
		fmt.Fprintf(&b, "LEFT BEHIND: %s\n", l)
	}
	for _, f := range files {
		fmt.Fprintf(&b, "Report: %s\n", f)
	}
	return WebhookMessage{Text: strings.TrimRight(b.String(), "\n")}
}

// webhook posts rec to hook, with retries.
func (d *Deliverer) webhook(ctx context.Context, hook experiments.Secret, rec *reports.Record, files []string, redact func(string) string) reports.Delivery {
	out := reports.Delivery{Channel: reports.ChannelWebhook, Target: hook.String()}
	// rec is already redacted; redacting the body again costs nothing and
	// keeps a secret that reached a reason some other way off the wire.
	body, err := json.Marshal(NewWebhookMessage(rec, files))
	if err != nil {
		out.Error = "encode webhook message: " + err.Error()
		return out
	}
	body = []byte(redact(string(body)))
	client := d.HTTP
	if client == nil {
		client = &http.Client{}
	}
	attempts, err := d.Retry.do(ctx, d.Clock, func(ctx context.Context) outcome {
		return post(ctx, client, hook.Reveal(), body, clock.Or(d.Clock).Now)
	})
	out.Attempts = attempts
	if err != nil {
		out.Error = redact(err.Error())
		return out
	}
	out.OK = true
	return out
}

// post makes one attempt. Its errors never hold the URL: the URL is the
// secret of most webhooks, and the target says which one it was.
func post(ctx context.Context, client *http.Client, hook string, body []byte, now func() time.Time) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return outcome{err: fmt.Errorf("%w: the webhook is not a URL", ErrRejected)}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return outcome{err: fmt.Errorf("post: %w", err), again: true}
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	// Read a little more so that the connection can be reused, but never
	// wait on a server that streams forever.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return outcome{}
	}
	se := &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return outcome{err: se, again: true, after: retryAfter(resp.Header.Get("Retry-After"), now())}
	default:
		return outcome{err: fmt.Errorf("%w: %w", ErrRejected, se)}
	}
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
