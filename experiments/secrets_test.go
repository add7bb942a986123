package experiments_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
)

func TestSecretsAreResolvedAndRecorded(t *testing.T) {
	exp, err := experiments.Load("testdata/good/everything.yaml", experiments.Options{LookupEnv: lookupSecret})
	require.NoError(t, err)
	h := exp.Spec.Probes["checkout"].HTTP
	require.Equal(t, "Bearer "+testSecrets["TOKEN"], h.Headers["Authorization"].Reveal(), "a reference inside a string is replaced in place")
	require.Equal(t, "Bearer ***", h.Headers["Authorization"].String(), "printed, the secret part is ***")
	require.Equal(t, testSecrets["PROM_PASSWORD"], exp.Spec.Probes["errors"].Prometheus.Auth.Basic.Password.Reveal())
	require.Equal(t, testSecrets["SMTP_PASSWORD"], exp.Spec.Report.Delivery.Email.SMTP.Password.Reveal())
	require.False(t, h.URL.HoldsSecret(), "a value without ${env:...} holds no secret")
	require.Equal(t, h.URL.Reveal(), h.URL.String(), "and prints as it is")
	require.ElementsMatch(t, []string{testSecrets["TOKEN"], testSecrets["PROM_PASSWORD"], testSecrets["SMTP_PASSWORD"]}, exp.Secrets(),
		"each resolved value is a secret, once")
}

func TestSecretsInPluginParameters(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "with: {delay: 1ms}", `with: {delay: 1ms, token: "${env:TOKEN}", literal: "$${env:TOKEN}", template: "${user}"}`, 1)
	exp := parseOK(t, src)
	with := exp.Spec.Faults[0].With
	tok, ok := with["token"].(experiments.Secret)
	require.True(t, ok, "a parameter holding ${env:...} is a Secret, so it never prints: got %T", with["token"])
	require.Equal(t, testSecrets["TOKEN"], tok.Reveal(), "a plugin gets the value")
	require.Equal(t, testSecrets["TOKEN"], experiments.RevealParams(with)["token"], "the plugin's request reveals it")
	require.Equal(t, "map[delay:1ms literal:${env:TOKEN} template:${user} token:***]", fmt.Sprint(with), "printed, the parameters show *** (the dry-run plan, the report)")
	require.Equal(t, "${env:TOKEN}", with["literal"], "$${ is a literal ${")
	require.Equal(t, "${user}", with["template"], "only ${env:...} is ours")
	require.Equal(t, []string{testSecrets["TOKEN"]}, exp.Secrets())
}

func TestMissingSecretIsAProblemAtItsPosition(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "http: {url: http://127.0.0.1:3/}", `http: {url: http://127.0.0.1:3/, headers: {X-Key: "k=${env:NOPE}"}}`, 1)
	probs := problems(t, src)
	require.Len(t, probs, 1)
	require.Equal(t, experiments.Pos{Line: 9, Col: 60}, probs[0].Pos, "the position is that of ${ inside the value")
	require.Equal(t, "environment variable NOPE is not set", probs[0].Message)
	require.Equal(t, "spec.probes.checkout.http.headers.X-Key", probs[0].Path)
}

func TestRedact(t *testing.T) {
	require.Equal(t, "a *** b ***", experiments.Redact("a s3cr3t b s3cr3t", []string{"s3cr3t"}))
	require.Equal(t, "x *** y", experiments.Redact("x s3cr3t-long y", []string{"s3cr3t", "s3cr3t-long"}), "the longer secret is replaced whole")
	require.Equal(t, "nothing", experiments.Redact("nothing", []string{"", "s3cr3t"}), "an empty secret redacts nothing")
	require.Equal(t, "plain", experiments.Redact("plain", nil))
}

// TestNoSecretInAnyMessage loads every file the tests have, valid or not,
// with the secrets set, and checks that no message shows one.
func TestNoSecretInAnyMessage(t *testing.T) {
	var files []string
	for _, g := range []string{"examples/*.yaml", "testdata/good/*.yaml", "testdata/bad/*.yaml", "testdata/*.yaml"} {
		m, err := filepath.Glob(g)
		require.NoError(t, err)
		files = append(files, m...)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = experiments.Parse(f, data, badOptions)
		if err != nil {
			requireNoSecret(t, "validating "+f, err.Error())
		}
	}
}

// hardSecret has what escaping changes (" and \), a non-ASCII letter, and
// more than 40 characters, which a message would cut short.
const hardSecret = `Zq8"Kx\Vm2-Wp7Lr4Tn9Yb6Hc3Jd5Gf1Xs0Qa8Ue2Io4Pk7-é-end`

// requireNoPiece fails if text holds hardSecret in any form: as it is,
// escaped as JSON or Go would, or any 8-character piece of those.
func requireNoPiece(t *testing.T, what, text string) {
	t.Helper()
	j, _ := json.Marshal(hardSecret)
	for _, form := range []string{hardSecret, string(j), fmt.Sprintf("%q", hardSecret), fmt.Sprintf("%+q", hardSecret)} {
		for i := 0; i+8 <= len(form); i++ {
			require.NotContainsf(t, text, form[i:i+8], "%s shows a piece of the secret (%q of form %s): %s", what, form[i:i+8], form, text)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "http: {url: http://127.0.0.1:3/}",
		`http: {url: "http://127.0.0.1:3/?token=${env:HARD}", headers: {X-Key: "${env:HARD}"}, body: "{\"t\": \"${env:HARD}\"}"}`, 1)
	src = strings.Replace(src, "with: {delay: 1ms}", `with: {delay: 1ms, token: "${env:HARD}", list: ["${env:HARD}"]}`, 1)
	exp, err := experiments.Parse("f.yaml", []byte(src), experiments.Options{LookupEnv: func(string) (string, bool) { return hardSecret, true }})
	require.NoError(t, err)
	h := exp.Spec.Probes["checkout"].HTTP
	require.Equal(t, "http://127.0.0.1:3/?token="+hardSecret, h.URL.Reveal(), "the request gets the secret")
	require.Equal(t, `{"t": "`+hardSecret+`"}`, h.Body.Reveal())
	require.Equal(t, "http://127.0.0.1:3/?token=***", h.URL.String(), "the template is printed with *** in place of the secret")

	var printed []string
	for _, v := range []any{h.URL, h.Headers, h.Body, exp.Spec.Faults[0].With, *h} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3s"} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		printed = append(printed, string(b))
	}
	txt, err := h.URL.MarshalText()
	require.NoError(t, err)
	printed = append(printed, string(txt))
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("probe", "url", h.URL, "with", exp.Spec.Faults[0].With)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("probe", "url", h.URL, "header", h.Headers["X-Key"])
	printed = append(printed, logged.String())
	for _, p := range printed {
		requireNoPiece(t, "printing a Secret", p)
	}
	revealed := experiments.RevealParams(exp.Spec.Faults[0].With)
	require.Equal(t, hardSecret, revealed["token"])
	require.Equal(t, []any{hardSecret}, revealed["list"], "secrets in lists are revealed too")
	_, still := exp.Spec.Faults[0].With["token"].(experiments.Secret)
	require.True(t, still, "revealing copies: the experiment keeps its Secret")
}

func TestSecretInAPlainFieldIsRefused(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "hypothesis: ", "hypothesis: ${env:TOKEN} ", 1)
	probs := problems(t, src)
	require.Len(t, probs, 1, "one problem, at the field: %v", probs)
	require.Equal(t, "spec.hypothesis", probs[0].Path)
	require.Contains(t, probs[0].Message, "not a secret field")
	requireNoSecret(t, "refusing a secret in a plain field", probs[0].Message+probs[0].Hint)
}

func TestBadSecretURLIsNotQuotedNorCut(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "http: {url: http://127.0.0.1:3/}", `http: {url: "ftp://x/${env:HARD}"}`, 1)
	_, err := experiments.Parse("f.yaml", []byte(src), experiments.Options{LookupEnv: func(string) (string, bool) { return hardSecret, true }})
	var fe *experiments.FileError
	require.ErrorAs(t, err, &fe, "an ftp URL is a problem")
	require.Len(t, fe.Problems, 1)
	require.Equal(t, "spec.probes.checkout.http.url", fe.Problems[0].Path)
	require.Contains(t, fe.Problems[0].Message, "ftp://x/${env:HARD}", "the message shows the value as written, so the user knows which variable")
	requireNoPiece(t, "validate's message", err.Error())
	b, jerr := json.Marshal(fe.Problems)
	require.NoError(t, jerr)
	requireNoPiece(t, "validate's problems as JSON", string(b))
}

func TestRedactFindsEscapedAndShortenedForms(t *testing.T) {
	secrets := []string{hardSecret}
	j, _ := json.Marshal(hardSecret)
	cut := string([]rune(hardSecret)[:40]) + "…"
	for _, text := range []string{
		"plain " + hardSecret,
		"json " + string(j),
		"go " + fmt.Sprintf("%q", hardSecret),
		"ascii " + fmt.Sprintf("%+q", hardSecret),
		"twice " + fmt.Sprintf("%q", fmt.Sprintf("param %q is bad", hardSecret)),
		"yaml '" + strings.ReplaceAll(hardSecret, "'", "''") + "'",
		"cut " + fmt.Sprintf("%q", cut),
		"cut ascii ..." + hardSecret[:20] + "...",
	} {
		got := experiments.Redact(text, secrets)
		requireNoPiece(t, "redacted "+text, got)
		require.Contains(t, got, experiments.Redacted, "what was removed is marked")
	}
}
