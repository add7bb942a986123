package probes_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/experiments"
	"github.com/chaos-run/chaos/probes"
)

// The tests of this file build probers the way a run does, through
// probes.New from a parsed experiment file, and point them at real
// servers, real sockets and real processes.

// probeLimit bounds every wait of these tests. It only matters when a
// prober breaks its promise to return by the time its context is done; then
// the test fails saying so instead of hanging.
const probeLimit = 10 * time.Second

// parseProbe parses a minimal valid experiment whose only probe, p, is
// declared by decl (a YAML flow mapping such as `{tcp: {address: ...}}`),
// and returns the probe as the engine gets it: validated, defaults applied.
func parseProbe(t *testing.T, decl string) *experiments.Probe {
	t.Helper()
	src := `apiVersion: chaos/v1
kind: Experiment
metadata: {name: probe-test, owner: {team: testers}}
spec:
  hypothesis: the probe observes exactly
  targets:
    link: {endpoint: {listen: 127.0.0.1:1, upstream: 127.0.0.1:2}}
  probes:
    p: ` + decl + `
  steadyState: [p.ok]
  faults:
    - {plugin: latency, target: link, for: 3s}
`
	exp, err := experiments.Parse("probe-test.yaml", []byte(src), experiments.Options{})
	require.NoError(t, err, "the test's probe declaration must be valid:\n%s", src)
	p := exp.Spec.Probes["p"]
	require.NotNil(t, p, "the parsed experiment has probe p")
	return p
}

// newProber builds the prober of decl through probes.New.
func newProber(t *testing.T, decl string) probes.Prober {
	t.Helper()
	pr, err := probes.New("p", parseProbe(t, decl))
	require.NoError(t, err, "NewProber accepts the valid declaration %s", decl)
	return pr
}

// probeOnce runs one observation under timeout, as the engine's observe
// does, and checks that the prober kept its promise to return once the
// context is done.
func probeOnce(t *testing.T, pr probes.Prober, timeout time.Duration) experiments.Observation {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	done := make(chan experiments.Observation, 1)
	go func() { done <- pr.Probe(ctx) }()
	select {
	case o := <-done:
		require.NotNil(t, o, "a prober always returns an observation")
		return o
	case <-time.After(timeout + probeLimit):
		require.FailNow(t, "the prober did not return after its context was done", "timeout %s", timeout)
		return nil
	}
}

// yamlQuote makes s safe inside a YAML flow mapping.
func yamlQuote(s string) string { return strconv.Quote(s) }

// --- HTTP and TLS ---------------------------------------------------------

// testPKI is a throwaway certificate authority with a server certificate
// for 127.0.0.1 and a client certificate, written as PEM files the way an
// experiment names them.
type testPKI struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
	server                    tls.Certificate
}

func newTestPKI(t *testing.T, name string) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err, "self-sign the test CA")
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = ca.NotBefore, ca.NotAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err, "issue %s", tmpl.Subject.CommonName)
		return der, key
	}
	serverDER, serverKey := issue(2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	clientDER, clientKey := issue(3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "probe client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})

	p := testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "client.pem"),
		keyFile:  filepath.Join(dir, "client-key.pem"),
		caPool:   x509.NewCertPool(),
	}
	p.caPool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", clientDER)
	clientKeyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	require.NoError(t, err)
	writePEM(t, p.keyFile, "PRIVATE KEY", clientKeyDER)
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600))
}

// startTLS starts a real HTTPS server with pki's server certificate. When
// clientAuth is set it requires a client certificate signed by pki's CA.
func startTLS(t *testing.T, pki testPKI, clientAuth bool, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pki.server}}
	if clientAuth {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = pki.caPool
	}
	// Refused handshakes are what some tests are about; the server's log
	// of them is noise.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func healthyHandler(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "healthy") }

func TestHTTPProbeWithClientCertificate(t *testing.T) {
	pki := newTestPKI(t, "right")
	other := newTestPKI(t, "wrong")
	srv := startTLS(t, pki, true, http.HandlerFunc(healthyHandler))

	for _, tc := range []struct {
		name string
		tls  string
		ok   bool
		why  string
	}{
		{"ca-and-client-cert", fmt.Sprintf("{ca: %s, cert: %s, key: %s}", yamlQuote(pki.caFile), yamlQuote(pki.certFile), yamlQuote(pki.keyFile)),
			true, "the probe trusts the test CA and presents the client certificate the server requires"},
		{"no-client-cert", fmt.Sprintf("{ca: %s}", yamlQuote(pki.caFile)),
			false, "the server requires a client certificate and the probe has none: the request was refused, which is no answer"},
		{"wrong-ca", fmt.Sprintf("{ca: %s, cert: %s, key: %s}", yamlQuote(other.caFile), yamlQuote(pki.certFile), yamlQuote(pki.keyFile)),
			false, "the server's certificate is not signed by the CA the probe trusts"},
		{"system-roots", fmt.Sprintf("{cert: %s, key: %s}", yamlQuote(pki.certFile), yamlQuote(pki.keyFile)),
			false, "without tls.ca the system's roots are used, and they do not know the test CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newProber(t, fmt.Sprintf("{http: {url: %s, tls: %s}, timeout: 5s}", yamlQuote(srv.URL+"/health"), tc.tls))
			o := probeOnce(t, pr, 5*time.Second)
			h, isHTTP := o.(experiments.HTTPObservation)
			require.True(t, isHTTP, "an http probe observes an HTTPObservation, got %T", o)
			if tc.ok {
				require.True(t, h.OK, "%s; error: %s", tc.why, h.Error)
				require.Equal(t, http.StatusOK, h.Status, "the status of the answer is observed")
				require.Equal(t, "healthy", h.Body, "the body of the answer is observed")
				require.Positive(t, h.Latency, "the latency of an answer is observed")
				require.Empty(t, h.Error, "an answered request has no error")
				return
			}
			require.False(t, h.OK, tc.why)
			require.False(t, o.Succeeded(), "a failed TLS handshake is never a pass")
			require.NotEmpty(t, h.Error, "the reason of the failure is recorded")
			require.Zero(t, h.Status, "no status was received")
		})
	}
}

func TestHTTPProbeInsecureSkipVerify(t *testing.T) {
	pki := newTestPKI(t, "unknown")
	srv := startTLS(t, pki, false, http.HandlerFunc(healthyHandler))

	pr := newProber(t, fmt.Sprintf("{http: {url: %s, tls: {insecureSkipVerify: true}}, timeout: 5s}", yamlQuote(srv.URL)))
	o := probeOnce(t, pr, 5*time.Second).(experiments.HTTPObservation)
	require.True(t, o.OK, "insecureSkipVerify accepts a certificate from a CA the probe does not know; error: %s", o.Error)
	require.Equal(t, http.StatusOK, o.Status)

	// The same server without insecureSkipVerify: the certificate is
	// checked, and refused.
	strict := newProber(t, fmt.Sprintf("{http: {url: %s}, timeout: 5s}", yamlQuote(srv.URL)))
	so := probeOnce(t, strict, 5*time.Second).(experiments.HTTPObservation)
	require.False(t, so.OK, "by default the server's certificate is checked against the system's roots")
	require.NotEmpty(t, so.Error, "the reason of the failure is recorded")
}

func TestHTTPProbeMissingTLSFileIsAnErrorAtStart(t *testing.T) {
	// Validation reads the CA file already; this is the file going away
	// between validation and the run.
	ca, err := filepath.Abs("../experiments/testdata/good/tls/ca.pem")
	require.NoError(t, err)
	p := parseProbe(t, fmt.Sprintf("{http: {url: https://127.0.0.1:1/, tls: {ca: %s}}}", yamlQuote(ca)))
	p.HTTP.TLS.CA = filepath.Join(t.TempDir(), "nope.pem")
	_, err = probes.New("p", p)
	require.ErrorIs(t, err, os.ErrNotExist, "a CA file that does not exist stops the run before anything is injected")
}

func TestHTTPProbeSendsMethodHeadersAndBody(t *testing.T) {
	type seen struct {
		method, auth, custom, body string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Get("Authorization"), r.Header.Get("X-Probe"), string(b)}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)

	pr := newProber(t, fmt.Sprintf(`{http: {url: %s, method: POST, headers: {Authorization: "Bearer t0k", X-Probe: chaos}, body: "{\"q\": 1}"}, timeout: 5s}`, yamlQuote(srv.URL)))
	o := probeOnce(t, pr, 5*time.Second).(experiments.HTTPObservation)
	require.True(t, o.OK, "the request was answered; error: %s", o.Error)
	require.Equal(t, http.StatusAccepted, o.Status, "the status is the server's, whatever it is")
	require.Equal(t, seen{http.MethodPost, "Bearer t0k", "chaos", `{"q": 1}`}, <-got,
		"the method, every configured header and the body reach the server")
}

func TestHTTPProbeObservesARedirectWithoutFollowingIt(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/new", http.StatusFound) })
	mux.HandleFunc("/new", func(http.ResponseWriter, *http.Request) { followed.Add(1) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	o := probeOnce(t, newProber(t, fmt.Sprintf("{http: {url: %s}, timeout: 5s}", yamlQuote(srv.URL+"/old"))), 5*time.Second).(experiments.HTTPObservation)
	require.True(t, o.OK, "a redirect is an answer; error: %s", o.Error)
	require.Equal(t, http.StatusFound, o.Status, "the probe observes the answer it was given, the redirect itself")
	require.Zero(t, followed.Load(), "the redirect is not followed: following it would observe another answer")
}

// silentServer accepts TCP connections and never answers on them, the way
// a hung service does. It returns the address and a counter of accepted
// connections; everything is closed when the test ends.
func silentServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	return acceptingServer(t, false)
}

// hangupServer accepts TCP connections and closes each at once, without a
// word: a client sees the connection reset or an EOF, never an answer.
func hangupServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	return acceptingServer(t, true)
}

func acceptingServer(t *testing.T, hangUp bool) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var accepted atomic.Int32
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Counted before the hang-up, so a client that saw the hang-up
			// finds its connection counted.
			accepted.Add(1)
			if hangUp {
				_ = c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), &accepted
}

func TestHTTPProbeTimesOutOnAServerThatNeverAnswers(t *testing.T) {
	addr, _ := silentServer(t)
	pr := newProber(t, fmt.Sprintf("{http: {url: %s}, timeout: 5s}", yamlQuote("http://"+addr+"/")))
	o := probeOnce(t, pr, 300*time.Millisecond).(experiments.HTTPObservation)
	require.False(t, o.OK, "no answer within the timeout is a failure, never a pass")
	require.Zero(t, o.Status, "no status was received")
	require.Contains(t, o.Error, "timed out", "the reason says the probe ran out of time")
}

// --- TCP ------------------------------------------------------------------

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	})
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })

	o := probeOnce(t, newProber(t, fmt.Sprintf("{tcp: {address: %s}, timeout: 5s}", yamlQuote(ln.Addr().String()))), 5*time.Second).(experiments.TCPObservation)
	require.True(t, o.OK, "a listening port accepts the connection; error: %s", o.Error)
	require.Positive(t, o.Latency, "the connect latency is observed")
	require.Empty(t, o.Error)

	closed := closedAddr(t)
	co := probeOnce(t, newProber(t, fmt.Sprintf("{tcp: {address: %s}, timeout: 5s}", yamlQuote(closed))), 5*time.Second).(experiments.TCPObservation)
	require.False(t, co.OK, "a closed port refuses the connection: a failure")
	require.NotEmpty(t, co.Error, "the reason of the failure is recorded")
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// --- exec -----------------------------------------------------------------

func execProbe(t *testing.T, command ...string) probes.Prober {
	t.Helper()
	quoted := make([]string, len(command))
	for i, c := range command {
		quoted[i] = yamlQuote(c)
	}
	return newProber(t, fmt.Sprintf("{exec: {command: [%s]}, timeout: 5s}", strings.Join(quoted, ", ")))
}

func TestExecProbeObservesExitCodeAndOutput(t *testing.T) {
	o := probeOnce(t, execProbe(t, "true"), 5*time.Second).(experiments.ExecObservation)
	require.True(t, o.OK, "true ran and exited; error: %s", o.Error)
	require.Equal(t, 0, o.ExitCode)
	require.Positive(t, o.Duration, "the duration is observed")

	o = probeOnce(t, execProbe(t, "sh", "-c", "echo hi; echo oops >&2; exit 3"), 5*time.Second).(experiments.ExecObservation)
	require.True(t, o.OK, "a command that exits with 3 ran: the exit code is the observation, not a failure to observe; error: %s", o.Error)
	require.Equal(t, 3, o.ExitCode, "the exit code is observed")
	require.Equal(t, "hi\n", o.Stdout, "stdout is observed")
	require.Equal(t, "oops\n", o.Stderr, "stderr is observed")
	require.True(t, experiments.Failed(o), "an exit code other than 0 counts as a failure for the budgets")
}

func TestExecProbeEnv(t *testing.T) {
	pr := newProber(t, `{exec: {command: [sh, -c, 'printf %s "$PROBE_GREETING"'], env: {PROBE_GREETING: hello}}, timeout: 5s}`)
	o := probeOnce(t, pr, 5*time.Second).(experiments.ExecObservation)
	require.True(t, o.OK, o.Error)
	require.Equal(t, "hello", o.Stdout, "env is added to the command's environment")
}

func TestExecProbeMissingProgram(t *testing.T) {
	o := probeOnce(t, execProbe(t, filepath.Join(t.TempDir(), "no-such-program")), 5*time.Second).(experiments.ExecObservation)
	require.False(t, o.OK, "a program that cannot start was not observed: a failure")
	require.NotEmpty(t, o.Error, "the reason is recorded")
	require.Equal(t, -1, o.ExitCode, "a command that never ran has no exit code")
}

// TestExecProbeHangingCommandLeavesNoProcess runs a command that hangs and
// has started a child that hangs too: when the time is up the probe fails,
// and neither process is left.
func TestExecProbeHangingCommandLeavesNoProcess(t *testing.T) {
	// Marks unique to this test run, so that no other process is mistaken
	// for one the probe left.
	child, parent := uniqueSleeps(t)
	pr := execProbe(t, "sh", "-c", fmt.Sprintf("sleep %s & exec sleep %s", child, parent))
	o := probeOnce(t, pr, 300*time.Millisecond).(experiments.ExecObservation)
	require.False(t, o.OK, "a command that runs out of time is a failure, whatever it would have said")
	require.Contains(t, o.Error, "timed out", "the reason says the probe ran out of time")
	require.Equal(t, -1, o.ExitCode, "a killed command has no exit code worth reading")
	requireNoSleep(t, child, parent)
}

// TestExecProbeLeftChildIsKilled runs a command that exits at once but
// leaves a child behind holding its stdout: the command's answer is
// observed, and the child does not outlive the probe.
func TestExecProbeLeftChildIsKilled(t *testing.T) {
	child, _ := uniqueSleeps(t)
	o := probeOnce(t, execProbe(t, "sh", "-c", fmt.Sprintf("sleep %s & echo started", child)), 5*time.Second).(experiments.ExecObservation)
	requireNoSleep(t, child)
	require.True(t, o.OK, "the command ran and exited 0; what its child does is not its answer; error: %s", o.Error)
	require.Equal(t, 0, o.ExitCode)
	require.Equal(t, "started\n", o.Stdout)
}

// uniqueSleeps returns two sleep durations (in seconds, thousands of them)
// that no other test or process uses.
func uniqueSleeps(t *testing.T) (string, string) {
	t.Helper()
	base := 3000 + (os.Getpid()%1000)*10 + int(sleepSeq.Add(2))
	return strconv.Itoa(base), strconv.Itoa(base + 1)
}

var sleepSeq atomic.Int32

// requireNoSleep waits, within a few seconds, until no process runs
// `sleep N` for any of the given Ns. Killed processes vanish from /proc
// asynchronously, so it polls; a zombie has an empty command line and does
// not count.
func requireNoSleep(t *testing.T, durations ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, d := range durations {
		want["sleep\x00"+d+"\x00"] = true
	}
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	// Polling /proc: there is nothing to wait on.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		left = left[:0]
		entries, err := os.ReadDir("/proc")
		require.NoError(t, err, "this test finds processes in /proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue // gone meanwhile
			}
			if want[string(cmdline)] {
				left = append(left, e.Name()+": "+strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	require.Empty(t, left, "no process of the probe may outlive it")
}

// --- retries --------------------------------------------------------------

// TestRetriesOnlyWhenNothingWasObserved checks the retry rule with servers
// whose every answer is the same, so the attempt count is exact: a
// connection that is hung up on without an answer is retried, up to
// retries more times; an answer (a 503, an exit code of 1) is never
// retried; and no attempt starts once the timeout is spent.
func TestRetriesOnlyWhenNothingWasObserved(t *testing.T) {
	t.Run("hang-up-is-retried", func(t *testing.T) {
		addr, accepted := hangupServer(t)
		pr := newProber(t, fmt.Sprintf("{http: {url: %s}, retries: 3, timeout: 5s}", yamlQuote("http://"+addr+"/")))
		o := probeOnce(t, pr, 5*time.Second)
		require.False(t, o.Succeeded(), "every attempt was hung up on: still a failure after the retries")
		require.NotEmpty(t, o.Failure(), "the reason of the last attempt is recorded")
		require.EqualValues(t, 4, accepted.Load(), "one attempt and 3 retries: each attempt is a new connection")
	})
	t.Run("no-retries-by-default", func(t *testing.T) {
		addr, accepted := hangupServer(t)
		o := probeOnce(t, newProber(t, fmt.Sprintf("{http: {url: %s}, timeout: 5s}", yamlQuote("http://"+addr+"/"))), 5*time.Second)
		require.False(t, o.Succeeded())
		require.EqualValues(t, 1, accepted.Load(), "retries happen only where the file asks for them")
	})
	t.Run("answer-is-not-retried", func(t *testing.T) {
		var requests atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			requests.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		o := probeOnce(t, newProber(t, fmt.Sprintf("{http: {url: %s}, retries: 3, timeout: 5s}", yamlQuote(srv.URL))), 5*time.Second).(experiments.HTTPObservation)
		require.True(t, o.OK, "a 503 is an answer; error: %s", o.Error)
		require.Equal(t, http.StatusServiceUnavailable, o.Status)
		require.EqualValues(t, 1, requests.Load(), "a 503 is the answer: retrying it would hide the failure the experiment looks for")
	})
	t.Run("exit-code-is-not-retried", func(t *testing.T) {
		runs := filepath.Join(t.TempDir(), "runs")
		pr := newProber(t, fmt.Sprintf("{exec: {command: [sh, -c, %s]}, retries: 3, timeout: 5s}", yamlQuote("echo run >> '"+runs+"'; exit 1")))
		o := probeOnce(t, pr, 5*time.Second).(experiments.ExecObservation)
		require.True(t, o.OK, o.Error)
		require.Equal(t, 1, o.ExitCode)
		b, err := os.ReadFile(runs)
		require.NoError(t, err)
		require.Equal(t, "run\n", string(b), "an exit code is the command's answer: it ran once")
	})
	t.Run("no-retry-after-the-timeout", func(t *testing.T) {
		addr, accepted := silentServer(t)
		pr := newProber(t, fmt.Sprintf("{http: {url: %s}, retries: 3, timeout: 5s}", yamlQuote("http://"+addr+"/")))
		o := probeOnce(t, pr, 300*time.Millisecond)
		require.False(t, o.Succeeded(), "no answer within the timeout")
		require.EqualValues(t, 1, accepted.Load(), "the first attempt spent the whole timeout: the retries share it and none may start")
	})
}

// TestBuiltinRunsEveryKindOfTheFormat keeps the runtime table in step with
// the format's: every kind a file may declare has a constructor.
func TestBuiltinRunsEveryKindOfTheFormat(t *testing.T) {
	reg := probes.Builtin()
	for _, kind := range experiments.ProbeKinds {
		require.Contains(t, reg, kind, "probes.Builtin has a constructor for the %s kind", kind)
	}
	require.Len(t, reg, len(experiments.ProbeKinds), "probes.Builtin runs no kind the format does not declare")
}

// TestRegistryWithoutAKindRefusesIt: a program may run fewer kinds than the
// format has; a probe of a missing kind is refused before anything runs.
func TestRegistryWithoutAKindRefusesIt(t *testing.T) {
	reg := probes.Builtin()
	delete(reg, experiments.ProbeTCP)
	_, err := reg.New("p", parseProbe(t, "{tcp: {address: 127.0.0.1:1}}"))
	require.ErrorIs(t, err, probes.ErrNotAvailable, "a kind the registry lacks is not available")
	_, err = probes.New("p", parseProbe(t, "{tcp: {address: 127.0.0.1:1}}"))
	require.NoError(t, err, "Builtin is a new value each call: deleting from one leaves the others whole")
}
