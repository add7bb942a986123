package experiments_test

import (
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
	require.Equal(t, "Bearer "+testSecrets["TOKEN"], h.Headers["Authorization"], "a reference inside a string is replaced in place")
	require.Equal(t, testSecrets["PROM_PASSWORD"], exp.Spec.Probes["errors"].Prometheus.Auth.Basic.Password)
	require.Equal(t, testSecrets["SMTP_PASSWORD"], exp.Spec.Report.Delivery.Email.SMTP.Password)
	require.ElementsMatch(t, []string{testSecrets["TOKEN"], testSecrets["PROM_PASSWORD"], testSecrets["SMTP_PASSWORD"]}, exp.Secrets(),
		"each resolved value is a secret, once")
}

func TestSecretsInPluginParameters(t *testing.T) {
	src := strings.Replace(withSteady("checkout.ok"), "with: {delay: 1ms}", `with: {delay: 1ms, token: "${env:TOKEN}", literal: "$${env:TOKEN}", template: "${user}"}`, 1)
	exp := parseOK(t, src)
	with := exp.Spec.Faults[0].With
	require.Equal(t, testSecrets["TOKEN"], with["token"], "a plugin gets the value")
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
	require.Equal(t, "a [redacted] b [redacted]", experiments.Redact("a s3cr3t b s3cr3t", []string{"s3cr3t"}))
	require.Equal(t, "x [redacted] y", experiments.Redact("x s3cr3t-long y", []string{"s3cr3t", "s3cr3t-long"}), "the longer secret is replaced whole")
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
