package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/reports"
)

// The tests of this file run third-party plugins installed in a plugin
// directory and pinned in a lock file, through the real chaos binary: the
// out-of-tree http-fault example against the demo service, and a plugin
// that misbehaves on purpose (testdata/misplugin) installed under the name
// of its flaw.

// pluginBins are the plugin binaries these tests install.
type pluginBins struct {
	httpFault, misplugin string
}

// thirdParty builds the plugins once, into TestMain's directory (removed
// when the tests end).
var thirdParty = sync.OnceValues(func() (pluginBins, error) {
	dir := filepath.Dir(built.chaos)
	b := pluginBins{httpFault: filepath.Join(dir, "http-fault"), misplugin: filepath.Join(dir, "misplugin")}
	// The example is its own module, built as its author would build it.
	ex := exec.Command("go", "build", "-o", b.httpFault, ".")
	ex.Dir = filepath.Join("..", "examples", "plugins", "http-fault")
	if out, err := ex.CombinedOutput(); err != nil {
		return b, fmt.Errorf("build the http-fault example: %w\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", b.misplugin, "./testdata/misplugin").CombinedOutput(); err != nil {
		return b, fmt.Errorf("build misplugin: %w\n%s", err, out)
	}
	return b, nil
})

func plugins(t *testing.T) pluginBins {
	t.Helper()
	b, err := thirdParty()
	require.NoError(t, err, "the test plugins build")
	return b
}

// install copies bin into a private plugin directory as chaos-plugin-NAME
// for each name, and returns the directory.
func install(t *testing.T, bin string, names ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	require.NoError(t, os.Mkdir(dir, 0o700))
	data, err := os.ReadFile(bin)
	require.NoError(t, err)
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "chaos-plugin-"+n), data, 0o755))
	}
	return dir
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// pluginExperiment writes an experiment whose one fault uses plugin on the
// demo's backend link (listen proxy, upstream backend), probing the front
// every 200ms, and returns its path. The fault starts 500ms into the fault
// phase and lasts 2s.
func pluginExperiment(t *testing.T, dir, plugin, with string, tg target) string {
	t.Helper()
	text := fmt.Sprintf(`apiVersion: chaos/v1
kind: Experiment
metadata:
  name: %[1]s-e2e
  owner: {team: e2e-team, email: e2e@example.com}
spec:
  hypothesis: The front answers 200 while its backend misbehaves.
  targets:
    backend-link:
      endpoint: {listen: %[2]q, upstream: %[3]q}
  probes:
    front:
      http: {url: %[4]q}
      every: 200ms
      timeout: 5s
  steadyState:
    - front.status == 200
  faults:
    - {plugin: %[1]s, target: backend-link, with: %[5]s, after: 500ms, for: 2s}
  safety: {maxDuration: 1m}
`, plugin, tg.proxy, tg.backend, "http://"+tg.front+"/health", with)
	path := filepath.Join(dir, plugin+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// installedProcesses lists live processes started from a binary of dir.
func installedProcesses(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if argv0, _, _ := strings.Cut(string(raw), "\x00"); strings.HasPrefix(argv0, dir+string(os.PathSeparator)) {
			found = append(found, e.Name()+" "+argv0)
		}
	}
	return found
}

// TestInstalledPluginThroughLockFile installs the out-of-tree http-fault
// example, pins it with `chaos plugins lock` next to the experiment, lists
// it, checks a file's parameters with it, and runs it against the demo: the
// front cannot stand a backend answering 503, so the hypothesis fails, and
// the proxy and the plugin are gone afterwards.
func TestInstalledPluginThroughLockFile(t *testing.T) {
	bins := plugins(t)
	pdir := install(t, bins.httpFault, "http-fault")
	proxy := freeAddr(t)
	front, backend := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0", "-backend-url", "http://"+proxy, "-timeout", "5s")
	expDir := t.TempDir()
	lock := filepath.Join(expDir, "plugins.lock")

	pin := start(t, built.chaos, "plugins", "lock", "--plugin-dir", pdir, "--plugin-lock", lock)
	require.Equalf(t, 0, pin.exitCode(t), "plugins lock\nstdout:\n%s\nstderr:\n%s", pin.stdout, pin.stderr)
	sum := sha256File(t, filepath.Join(pdir, "chaos-plugin-http-fault"))
	require.Contains(t, readFile(t, expDir, "plugins.lock"), "http-fault 0.1.0 sha256:"+sum, "the lock file pins the plugin by name, version and SHA-256")

	list := start(t, built.chaos, "plugins", "list", "--plugin-dir", pdir, "--plugin-lock", lock)
	require.Equalf(t, 0, list.exitCode(t), "plugins list\nstderr:\n%s", list.stderr)
	require.Regexp(t, `(?m)^http-fault\s+0\.1\.0\s+endpoint\s+\S+chaos-plugin-http-fault\s+`+sum+`\s+yes\s`, list.stdout.String(), "list shows the installed plugin's version, targets, sum and that it is pinned")
	require.Regexp(t, `(?m)^latency\s+\S+\s+endpoint,host\s+built-in`, list.stdout.String(), "list still shows the built-in plugins")

	// validate asks the installed plugin about `with`, as for a built-in.
	bad := pluginExperiment(t, expDir, "http-fault", "{status: 200}", target{front: front, backend: backend, proxy: proxy})
	val := start(t, built.chaos, "validate", "--plugin-dir", pdir, bad)
	require.Equalf(t, reports.Invalid.ExitCode(), val.exitCode(t), "validate of a bad status\nstdout:\n%s\nstderr:\n%s", val.stdout, val.stderr)
	require.Regexp(t, `http-fault\.yaml:\d+:\d+: .*status`, val.stdout.String(), "the plugin's problem is positioned at its parameter")

	exp := pluginExperiment(t, expDir, "http-fault", "{status: 503, share: 1}", target{front: front, backend: backend, proxy: proxy})
	reportDir := t.TempDir()
	run := start(t, built.chaos, "run", "--plugin-dir", pdir, "--report-dir", reportDir, exp)
	code := run.exitCode(t)
	require.Equalf(t, reports.Failed.ExitCode(), code, "a run whose steady state breaks under the fault\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	require.Equal(t, reports.Failed, rec.Verdict, "verdict (reason: %s)", rec.Reason)
	require.Equal(t, reports.Cause("steady-state-broke"), rec.Cause, "the front answered 502 while the backend link answered 503")
	require.Empty(t, rec.Leftovers, "the fault and the proxy were reverted")
	requireRefused(t, proxy)
	require.Empty(t, installedProcesses(t, pdir), "no installed plugin process is left")
}

// TestInstalledPluginRefusals: what chaos will not start is refused (exit
// 5) with a report whose cause says why, before anything is touched.
func TestInstalledPluginRefusals(t *testing.T) {
	bins := plugins(t)
	tg := target{front: "127.0.0.1:1", backend: "127.0.0.1:2", proxy: freeAddr(t)}
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

	for _, tc := range []struct {
		name   string
		bin    string
		plugin string // the name it is installed and used under
		lock   func(sum string) string
		cause  reports.Cause
		says   func(sum string) []string
	}{{
		name: "wrong checksum", bin: bins.httpFault, plugin: "http-fault",
		lock:  func(string) string { return "http-fault 0.1.0 sha256:" + zeros + "\n" },
		cause: "plugin-checksum",
		says:  func(sum string) []string { return []string{sum, zeros} },
	}, {
		name: "missing from the lock file", bin: bins.httpFault, plugin: "http-fault",
		lock:  func(string) string { return "other 1.0.0 sha256:" + zeros + "\n" },
		cause: "plugin-unpinned",
		says:  func(string) []string { return []string{"--allow-unpinned", "chaos plugins lock"} },
	}, {
		name: "shadowing a built-in", bin: bins.httpFault, plugin: "latency",
		lock:  func(sum string) string { return "latency 0.1.0 sha256:" + sum + "\n" },
		cause: "plugin-shadows-builtin",
		says:  func(string) []string { return []string{"chaos-plugin-latency", "built-in"} },
	}, {
		name: "protocol mismatch", bin: bins.misplugin, plugin: "oldproto",
		lock:  func(sum string) string { return "oldproto 0.1.0 sha256:" + sum + "\n" },
		cause: "plugin-protocol",
		says:  func(string) []string { return []string{"protocol version 2", "version 1"} },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			pdir := install(t, tc.bin, tc.plugin)
			sum := sha256File(t, filepath.Join(pdir, "chaos-plugin-"+tc.plugin))
			expDir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(expDir, "plugins.lock"), []byte(tc.lock(sum)), 0o644))
			with := "{status: 503}"
			if tc.plugin == "latency" || tc.plugin == "oldproto" {
				with = "{delay: 10ms}"
			}
			exp := pluginExperiment(t, expDir, tc.plugin, with, tg)
			reportDir := t.TempDir()
			run := start(t, built.chaos, "run", "--plugin-dir", pdir, "--report-dir", reportDir, exp)
			require.Equalf(t, reports.Refused.ExitCode(), run.exitCode(t), "exit code\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
			rec := readRecord(t, reportDir)
			require.Equal(t, reports.Refused, rec.Verdict, "verdict (reason: %s)", rec.Reason)
			require.Equal(t, tc.cause, rec.Cause, "cause (reason: %s)", rec.Reason)
			for _, s := range tc.says(sum) {
				require.Contains(t, rec.Reason, s, "the reason says what is wrong and what to do")
			}
			requireRefused(t, tg.proxy)
			require.Empty(t, installedProcesses(t, pdir), "a refused plugin is never left running")
		})
	}

	t.Run("allow-unpinned lets an unpinned plugin check a file", func(t *testing.T) {
		pdir := install(t, bins.httpFault, "http-fault")
		exp := pluginExperiment(t, t.TempDir(), "http-fault", "{status: 503}", tg)
		val := start(t, built.chaos, "validate", "--plugin-dir", pdir, exp)
		require.Equalf(t, reports.Refused.ExitCode(), val.exitCode(t), "without a lock file the plugin is not started\nstdout:\n%s\nstderr:\n%s", val.stdout, val.stderr)
		val = start(t, built.chaos, "validate", "--plugin-dir", pdir, "--allow-unpinned", exp)
		require.Equalf(t, 0, val.exitCode(t), "--allow-unpinned starts it\nstdout:\n%s\nstderr:\n%s", val.stdout, val.stderr)
	})
}

// TestInstalledPluginCrashesDuringInject: a plugin process that dies while
// injecting ends the run in error, and its prepared proxy died with it:
// nothing is left on the machine.
func TestInstalledPluginCrashesDuringInject(t *testing.T) {
	rec, tg, pdir := runMisplugin(t, "crash-inject")
	require.Equal(t, reports.Error, rec.Verdict, "verdict (reason: %s)", rec.Reason)
	require.Equal(t, reports.Cause("plugin-exited"), rec.Cause, "cause (reason: %s)", rec.Reason)
	require.Contains(t, rec.Reason, "crash-inject", "the reason names the plugin that broke")
	requireRefused(t, tg.proxy)
	require.Empty(t, installedProcesses(t, pdir), "the crashed plugin is gone")
}

// TestInstalledPluginHangsInRevert: a revert that never returns is bounded
// by the revert timeout; the run ends in error, the report lists the fault
// as possibly left, and the plugin is killed (which here also ends its
// proxy).
func TestInstalledPluginHangsInRevert(t *testing.T) {
	rec, tg, pdir := runMisplugin(t, "hang-revert")
	require.Equal(t, reports.Error, rec.Verdict, "verdict (reason: %s)", rec.Reason)
	require.NotEmpty(t, rec.Cause, "every verdict has a cause")
	require.NotEmpty(t, rec.Leftovers, "the report says what may be left behind")
	named := false
	for _, l := range rec.Leftovers {
		named = named || strings.Contains(l, "hang-revert")
	}
	require.True(t, named, "a leftover names the plugin whose revert hung: %v", rec.Leftovers)
	requireRefused(t, tg.proxy)
	require.Empty(t, installedProcesses(t, pdir), "the hung plugin was killed")
}

// runMisplugin installs and pins misplugin as chaos-plugin-MODE, runs a
// 10ms latency fault with it against the demo, and returns the record.
func runMisplugin(t *testing.T, mode string) (*reports.Record, target, string) {
	t.Helper()
	bins := plugins(t)
	pdir := install(t, bins.misplugin, mode)
	proxy := freeAddr(t)
	front, backend := startDemo(t, "-front", "127.0.0.1:0", "-backend", "127.0.0.1:0", "-backend-url", "http://"+proxy, "-timeout", "5s")
	tg := target{front: front, backend: backend, proxy: proxy}
	expDir := t.TempDir()
	sum := sha256File(t, filepath.Join(pdir, "chaos-plugin-"+mode))
	require.NoError(t, os.WriteFile(filepath.Join(expDir, "plugins.lock"), []byte(mode+" 0.1.0 sha256:"+sum+"\n"), 0o644))
	exp := pluginExperiment(t, expDir, mode, "{delay: 10ms}", tg)
	reportDir := t.TempDir()
	run := start(t, built.chaos, "run", "--plugin-dir", pdir, "--report-dir", reportDir, exp)
	require.Equalf(t, reports.Error.ExitCode(), run.exitCode(t), "exit code\nstdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
	rec := readRecord(t, reportDir)
	t.Logf("reason: %s; leftovers: %v", rec.Reason, rec.Leftovers)
	return rec, tg, pdir
}
