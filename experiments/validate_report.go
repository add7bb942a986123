package experiments

// This file checks spec.report.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chaos-run/chaos/internal/strictyaml"
)

// resolveDeliveryDir makes a relative report.delivery.dir relative to the
// experiment file's directory, not to wherever chaos happens to be started:
// the file means the same wherever it is run from.
func resolveDeliveryDir(e *Experiment, d *Delivery) {
	if strings.TrimSpace(d.Dir) != "" {
		d.Dir = e.resolvePath(d.Dir)
	}
}

func validateReport(c checker, r *Report) {
	const p = "spec.report"
	seen := map[string]bool{}
	for i, f := range r.Formats {
		path := fmt.Sprintf("%s.formats[%d]", p, i)
		switch {
		case !slices.Contains(ReportFormats, f):
			c.at(path, fmt.Sprintf("unknown report format %q", strictyaml.Shorten(f)), strictyaml.DidYouMean(f, ReportFormats, strictyaml.HintList(ReportFormats)))
		case seen[f]:
			c.at(path, fmt.Sprintf("report format %s is listed twice", f), "")
		}
		seen[f] = true
	}
	if len(r.Formats) == 0 {
		r.Formats = slices.Clone(DefaultReportFormats)
	}
	d := &r.Delivery
	if c.exp.Has(p+".delivery.dir") && strings.TrimSpace(d.Dir) == "" {
		c.at(p+".delivery.dir", "dir is empty", "a directory, e.g. reports/")
	}
	resolveDeliveryDir(c.exp, d)
	if !d.Webhook.IsZero() {
		checkURL(c, p+".delivery.webhook", d.Webhook, "https://hooks.slack.com/services/T000/B000/XXXX")
	}
	if m := d.Email; m != nil {
		ep := p + ".delivery.email"
		if len(m.To) == 0 {
			c.missing(ep+".to", "a list of addresses, e.g. to: [payments-oncall@example.com]")
		}
		for i, to := range m.To {
			checkEmail(c, fmt.Sprintf("%s.to[%d]", ep, i), to)
		}
		if !c.exp.Has(ep + ".smtp") {
			c.missing(ep+".smtp", "the mail server, e.g. smtp: {address: smtp.example.com:587}")
		} else {
			checkHostPort(c, ep+".smtp.address", m.SMTP.Address)
		}
		if m.SMTP.From != "" {
			checkEmail(c, ep+".smtp.from", m.SMTP.From)
		}
		if !m.SMTP.Password.IsZero() && m.SMTP.Username.IsZero() {
			c.missing(ep+".smtp.username", "a password needs a username")
		}
	}
}
