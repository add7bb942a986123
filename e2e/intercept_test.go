package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netns"

	"github.com/chaos-run/chaos/reports"
)

// Intercept mode end to end: two network namespaces the test creates,
// joined by a veth pair, an echo server in one, a client in the other that
// is never told about a proxy. The real chaos binary injects latency by
// nftables rules in the client's namespace.

// link is the test's network: server answers echo on serverAddr in srvNS,
// and the client connects from cliNS.
type link struct {
	srvNS, cliNS string
	serverAddr   string
}

// newLink creates the namespaces, the veth pair and the echo server, all
// removed when the test ends, on IPv4. It skips, saying why, when not root.
func newLink(t *testing.T) link { return newLinkOf(t, false) }

// newLinkOf is newLink on IPv6 when v6 is set.
func newLinkOf(t *testing.T, v6 bool) link {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces (ip netns add), a veth pair, and nftables rules")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	l := link{srvNS: "chaos-srv-" + tag, cliNS: "chaos-cli-" + tag}
	// A /30 of 10.200.0.0/16 of the test's own, so parallel tests do not
	// collide; the namespaces are private anyway.
	sub := fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])
	vs, vc := "vs"+tag, "vc"+tag
	ipcmd := func(args ...string) {
		out, err := exec.Command("ip", args...).CombinedOutput()
		require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
	}
	ipcmd("netns", "add", l.srvNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.srvNS).Run() })
	ipcmd("netns", "add", l.cliNS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.cliNS).Run() })
	ipcmd("link", "add", vs, "type", "veth", "peer", "name", vc)
	ipcmd("link", "set", vs, "netns", l.srvNS)
	ipcmd("link", "set", vc, "netns", l.cliNS)
	srvIP := sub + ".1"
	if v6 {
		// A /64 of a unique local prefix of the test's own; nodad, so
		// the addresses are usable at once.
		prefix := fmt.Sprintf("fd00:c4a0:%02x%02x:%02x", b[0], b[1], b[2])
		srvIP = prefix + "::1"
		ipcmd("-n", l.srvNS, "addr", "add", srvIP+"/64", "dev", vs, "nodad")
		ipcmd("-n", l.cliNS, "addr", "add", prefix+"::2/64", "dev", vc, "nodad")
	} else {
		ipcmd("-n", l.srvNS, "addr", "add", srvIP+"/30", "dev", vs)
		ipcmd("-n", l.cliNS, "addr", "add", sub+".2/30", "dev", vc)
	}
	for _, x := range [][2]string{{l.srvNS, vs}, {l.cliNS, vc}} {
		ipcmd("-n", x[0], "link", "set", x[1], "up")
		ipcmd("-n", x[0], "link", "set", "lo", "up")
	}
	var ln net.Listener
	inNS(t, l.srvNS, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(srvIP, "0"))
		return err
	})
	l.serverAddr = ln.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l
}

// inNS runs fn on a thread inside the named namespace; sockets it makes
// stay there.
func inNS(t *testing.T, name string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(name)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			done <- err // the thread dies locked
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	require.NoError(t, <-done, "in network namespace %s", name)
}

// dialFromClient connects to the server from the client's namespace.
func (l link) dial(t *testing.T) (net.Conn, error) {
	var c net.Conn
	var derr error
	inNS(t, l.cliNS, func() error {
		c, derr = net.DialTimeout("tcp", l.serverAddr, 5*time.Second)
		return nil
	})
	return c, derr
}

// roundTrip is the median time of 5 echoes of 64 bytes from the client, each
// on a connection of its own (so each meets the rules as they are now).
func (l link) roundTrip(t *testing.T) time.Duration {
	t.Helper()
	var rtts []time.Duration
	for range 5 {
		c, err := l.dial(t)
		require.NoError(t, err, "the client reaches the server")
		require.NoError(t, c.SetDeadline(time.Now().Add(waitLimit)))
		msg, buf := make([]byte, 64), make([]byte, 64)
		start := time.Now()
		_, err = c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		rtts = append(rtts, time.Since(start))
		_ = c.Close()
		require.NoError(t, err, "the echo comes back")
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// flows says whether an echo from the client comes back now.
func (l link) flows(t *testing.T) bool {
	c, err := l.dial(t)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil
}

// tables lists the chaos tables in the client's namespace.
func (l link) tables(t *testing.T) []string {
	t.Helper()
	h, err := netns.GetFromName(l.cliNS)
	require.NoError(t, err)
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	require.NoError(t, err)
	var names []string
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		ts, err := c.ListTablesOfFamily(fam)
		require.NoError(t, err)
		for _, tb := range ts {
			if strings.HasPrefix(tb.Name, "chaos_latency_") {
				names = append(names, tb.Name)
			}
		}
	}
	return names
}

// writeIntercept writes an experiment that delays the client's traffic to
// the server by delay each way, for faultFor, with a trivial steady state
// (a loopback listener of the test) so that only the fault matters.
func writeIntercept(t *testing.T, l link, delay, faultFor string, extraFaults ...string) string {
	t.Helper()
	alive, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = alive.Close() })
	go func() {
		for {
			c, err := alive.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: intercept-e2e
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: The client reaches the server while its traffic is slower.
  targets:
    box: {host: {}}
  probes:
    alive: {tcp: {address: %s}, every: 200ms, timeout: 1s}
  steadyState:
    - alive.ok
  faults:
    - plugin: latency
      target: box
      with: {mode: intercept, delay: %s, destination: %q, namespace: %s}
      after: 200ms
      for: %s
%s  safety: {maxDuration: 20m}
`, alive.Addr(), delay, l.serverAddr, l.cliNS, faultFor, strings.Join(extraFaults, ""))
	file := filepath.Join(t.TempDir(), "intercept.yaml")
	require.NoError(t, os.WriteFile(file, []byte(text), 0o600))
	return file
}

// TestInterceptAddsDelayAndRevertRestores: while the fault is live the
// client, untouched, measures the delay twice per round trip; a connection
// it opened before the fault keeps working, on its direct path; once the
// run passed, the round trip is back near its baseline, no table is left,
// and the report says what the fault delayed and that one connection was
// already open. On IPv4 and on IPv6.
func TestInterceptAddsDelayAndRevertRestores(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4", true: "ipv6"}[v6], func(t *testing.T) { interceptAddsDelay(t, newLinkOf(t, v6)) })
	}
}

func interceptAddsDelay(t *testing.T, l link) {
	const delay = 150 * time.Millisecond
	base := l.roundTrip(t)
	old, err := l.dial(t)
	require.NoError(t, err)
	defer old.Close()
	require.NoError(t, old.SetDeadline(time.Now().Add(waitLimit)))
	echoOn := func(c net.Conn) error {
		if _, err := c.Write([]byte("ping")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 4))
		return err
	}
	require.NoError(t, echoOn(old))
	file := writeIntercept(t, l, "150ms", "3s")
	reportDir := t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", t.TempDir(), "--report-dir", reportDir, file)
	run.waitLine(t, run.stderr, "msg=inject")
	require.True(t, poll(waitLimit, func() bool { return len(l.tables(t)) == 1 }), "the fault writes one table in the client's namespace")
	during := l.roundTrip(t)
	// A lower bound only: the delay is added, however busy the machine.
	require.GreaterOrEqual(t, during, 2*delay, "the client measures the delay each way (baseline %s)", base)
	// Before the rules, nothing tracked connections in the client's
	// namespace: the rules must not take this one mid-stream (it would be
	// reset), only new ones.
	require.NoError(t, echoOn(old), "a connection open before the fault keeps working during it")
	require.Equalf(t, 0, run.exitCode(t), "the run passes\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Passed, rec.Verdict, "reason: %s", rec.Reason)
	require.Len(t, rec.Faults, 1)
	require.Regexp(t, `^delayed [0-9.]+ (bytes|KiB) in [0-9]+ chunks( \([^)]*\))?; [1-9][0-9]* connections? opened during the fault; 1 connection to `+regexp.QuoteMeta(l.serverAddr)+` was already open and kept its direct path, undelayed`,
		rec.Faults[0].Detail, "the report says what the fault delayed, and what it could not")
	require.Empty(t, l.tables(t), "the revert deletes the table")
	after := l.roundTrip(t)
	require.Less(t, after, delay, "after the revert the round trip is back to its baseline %s, not delayed (was %s during the fault)", base, during)
	t.Logf("round trip: baseline %s, during the fault %s, after %s", base, during, after)
}

// TestInterceptRunnerKilledPluginAliveRevertsByItself: SIGKILL of the
// runner; the plugin, told by the kernel (parent death signal), deletes its
// table, traffic flows again, and recover closes the ledger.
func TestInterceptRunnerKilledPluginAliveRevertsByItself(t *testing.T) {
	l := newLink(t)
	file := writeIntercept(t, l, "1h", "10m")
	stateDir := t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, file)
	waitInjected(t, run, stateDir)
	require.Len(t, l.tables(t), 1)
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL), "kill the runner")
	run.exitCode(t)
	requireKilled(t, run)
	require.True(t, poll(waitLimit, func() bool { return len(l.tables(t)) == 0 }), "the orphaned plugin deletes its table")
	require.True(t, l.flows(t), "traffic flows again")
	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	require.Empty(t, openEntries(t, stateDir), "recover leaves the ledger clean")
}

// TestInterceptPluginDeadRecoverDeletesTable: runner and plugin both die
// by SIGKILL, so nobody deletes the table: the client's connections are
// redirected into a port nobody listens on. `chaos recover` starts a fresh
// plugin that deletes the table by the entry's id and handle, and traffic
// flows again.
func TestInterceptPluginDeadRecoverDeletesTable(t *testing.T) {
	l := newLink(t)
	file := writeIntercept(t, l, "1h", "10m")
	stateDir := t.TempDir()
	run := start(t, built.chaos, "run", "--state-dir", stateDir, file)
	waitInjected(t, run, stateDir)
	plugins := pluginsOfRun(t, run)
	require.Len(t, plugins, 1, "one latency plugin")
	// Stopped first, so the runner cannot notice its plugin die and act.
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGSTOP))
	require.NoError(t, syscall.Kill(plugins[0].pid, syscall.SIGKILL), "kill the plugin")
	require.NoError(t, run.cmd.Process.Signal(syscall.SIGKILL), "kill the runner")
	run.exitCode(t)
	require.True(t, poll(waitLimit, func() bool { return len(pluginsOfRun(t, run)) == 0 }), "the plugin is gone")
	require.Len(t, l.tables(t), 1, "a killed plugin leaves its table")
	require.False(t, l.flows(t), "the table redirects into a proxy that is gone")

	rec := start(t, built.chaos, "recover", "--state-dir", stateDir)
	require.Equalf(t, 0, rec.exitCode(t), "chaos recover\nstdout:\n%s\nstderr:\n%s", rec.stdout, rec.stderr)
	require.Empty(t, l.tables(t), "recover's fresh plugin deletes the table")
	require.True(t, l.flows(t), "traffic flows again")
	require.Empty(t, openEntries(t, stateDir), "recover leaves the ledger clean")
	requireNoPlugins(t)
}

// TestInterceptTransferAcrossInjectAndRevertLosesNothing: a stream opened
// through the rules (so it rides the plugin's proxy) goes on while the
// fault is reverted (the table deleted, the proxy drained to a delay-free
// pass-through) and ends with every byte echoed, in order: the checksums of
// what was sent and what came back agree. A second fault on a port nobody
// uses keeps the run, and so the plugin, alive until the test is done.
func TestInterceptTransferAcrossInjectAndRevertLosesNothing(t *testing.T) {
	l := newLink(t)
	host, _, err := net.SplitHostPort(l.serverAddr)
	require.NoError(t, err)
	keeper := fmt.Sprintf(`    - plugin: latency
      target: box
      with: {mode: intercept, delay: 1ms, destination: "%s:1", namespace: %s}
      after: 200ms
      for: 10m
`, host, l.cliNS)
	file := writeIntercept(t, l, "20ms", "2s", keeper)
	run := start(t, built.chaos, "run", "--state-dir", t.TempDir(), "--report-dir", t.TempDir(), file)
	require.True(t, poll(waitLimit, func() bool { return len(l.tables(t)) == 2 }), "both faults are live\nstderr:\n%s", run.stderr)

	c, err := l.dial(t)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(waitLimit)))
	sent, got := sha256.New(), sha256.New()
	var received int64
	readDone := make(chan error, 1)
	go func() {
		n, err := io.Copy(got, c)
		received = n
		readDone <- err
	}()
	var total int64
	chunk := make([]byte, 16<<10)
	write := func() {
		_, _ = rand.Read(chunk)
		_, _ = sent.Write(chunk)
		_, err := c.Write(chunk)
		require.NoError(t, err, "the stream is never cut")
		total += int64(len(chunk))
		time.Sleep(2 * time.Millisecond) // paced, bounded: at most a few MB
	}
	// Bounded: the revert is due 2 s after the inject; waitLimit caps it.
	deadline := time.Now().Add(waitLimit)
	for len(l.tables(t)) == 2 && time.Now().Before(deadline) {
		write()
	}
	require.Len(t, l.tables(t), 1, "the first fault was reverted while the stream ran")
	for range 200 {
		write()
	}
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	require.NoError(t, <-readDone, "the echo ends cleanly")
	require.Equal(t, total, received, "every byte sent came back")
	require.Equal(t, hex.EncodeToString(sent.Sum(nil)), hex.EncodeToString(got.Sum(nil)), "and in order: the checksums agree")

	require.NoError(t, run.cmd.Process.Signal(syscall.SIGINT))
	require.Equalf(t, reports.Aborted.ExitCode(), run.exitCode(t), "interrupted\nstderr:\n%s", run.stderr)
	require.Empty(t, l.tables(t), "nothing is left")
	t.Logf("%d bytes across inject and revert, checksums agree", total)
}
