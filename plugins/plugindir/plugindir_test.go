package plugindir_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/plugindir"
)

// script installs a shell script as chaos-plugin-NAME in dir and returns
// its SHA-256. Shell scripts stand in for plugin binaries: what is checked
// here is which bytes run, not the plugin protocol.
func script(t *testing.T, dir, name, says string) string {
	t.Helper()
	body := "#!/bin/sh\necho " + says + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, plugindir.Prefix+name), []byte(body), 0o755))
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

func privateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "plugins")
	require.NoError(t, os.Mkdir(dir, 0o700))
	return dir
}

func lockFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), plugindir.LockFileName)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

func source(dir, lock string) plugindir.Source {
	return plugindir.Source{Dir: dir, LockPath: lock, Builtins: []string{"latency"},
		BuiltinCommand: func(name string) (*exec.Cmd, error) { return exec.Command("true"), nil }}
}

// run starts cmd as engine.ExecPlugins would and returns its output.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.Output()
	for _, f := range cmd.ExtraFiles {
		require.NoError(t, f.Close())
	}
	require.NoError(t, err, "the verified command runs")
	return string(out)
}

func TestPinnedPluginRunsTheBytesItHashed(t *testing.T) {
	dir := privateDir(t)
	sum := script(t, dir, "good", "original")
	src := source(dir, lockFile(t, "good 1.0.0 sha256:"+sum+"\n"))
	cmd, err := src.Command("good")
	require.NoError(t, err, "a plugin whose binary matches its pin may run")
	require.Equal(t, filepath.Join(dir, "chaos-plugin-good"), cmd.Args[0], "people see the installed path")

	// Replace the file after the check: the command still runs what was
	// hashed, since it starts from the descriptor that was hashed.
	swapped := filepath.Join(dir, "swap")
	require.NoError(t, os.WriteFile(swapped, []byte("#!/bin/sh\necho swapped\n"), 0o755))
	require.NoError(t, os.Rename(swapped, filepath.Join(dir, "chaos-plugin-good")))
	require.Equal(t, "original\n", run(t, cmd), "the bytes hashed are the bytes run")
}

func TestChecksumMismatchNamesBothSums(t *testing.T) {
	dir := privateDir(t)
	sum := script(t, dir, "good", "hi")
	want := "1111111111111111111111111111111111111111111111111111111111111111"
	lock := lockFile(t, "# pins\ngood 1.0.0 sha256:"+want+"\n")
	_, err := source(dir, lock).Command("good")
	require.ErrorIs(t, err, plugindir.ErrChecksumMismatch)
	var ce *plugindir.ChecksumError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, sum, ce.Got, "the error carries the binary's sum")
	require.Equal(t, want, ce.Want, "and the pinned one")
	require.Equal(t, 2, ce.Line, "and where the pin is")
	require.Contains(t, err.Error(), sum)
	require.Contains(t, err.Error(), want)

	src := source(dir, lock)
	src.AllowUnpinned = true
	_, err = src.Command("good")
	require.ErrorIs(t, err, plugindir.ErrChecksumMismatch, "--allow-unpinned never overrides a pin that differs")
}

func TestUnpinnedIsRefusedUnlessAllowed(t *testing.T) {
	dir := privateDir(t)
	script(t, dir, "good", "hi")
	for name, lock := range map[string]string{"no lock file": "", "not in the lock": lockFile(t, "")} {
		src := source(dir, lock)
		_, err := src.Command("good")
		require.ErrorIs(t, err, plugindir.ErrNotPinned, name)
		src.AllowUnpinned = true
		cmd, err := src.Command("good")
		require.NoError(t, err, "%s: --allow-unpinned lets it run", name)
		require.Equal(t, "hi\n", run(t, cmd))
	}
}

func TestBuiltinCannotBeShadowed(t *testing.T) {
	dir := privateDir(t)
	sum := script(t, dir, "latency", "impostor")
	_, err := source(dir, lockFile(t, "latency 1.0.0 sha256:"+sum+"\n")).Command("latency")
	require.ErrorIs(t, err, plugindir.ErrShadowsBuiltin, "an installed plugin with a built-in's name is refused, pinned or not")
	cmd, err := source(privateDir(t), "").Command("latency")
	require.NoError(t, err, "the built-in runs when nothing shadows it")
	require.Equal(t, "true", filepath.Base(cmd.Path))
}

func TestUnsafeDirectoryAndFilesAreRefused(t *testing.T) {
	dir := privateDir(t)
	sum := script(t, dir, "good", "hi")
	lock := lockFile(t, "good 1.0.0 sha256:"+sum+"\n")

	require.NoError(t, os.Chmod(dir, 0o777))
	_, err := source(dir, lock).Command("good")
	require.ErrorIs(t, err, plugindir.ErrUnsafe, "a directory others can write to")
	require.NoError(t, os.Chmod(dir, 0o700))

	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	_, err = source(link, lock).Command("good")
	require.ErrorIs(t, err, plugindir.ErrUnsafe, "a plugin directory that is a symlink")

	require.NoError(t, os.Chmod(filepath.Join(dir, "chaos-plugin-good"), 0o777))
	_, err = source(dir, lock).Command("good")
	require.ErrorIs(t, err, plugindir.ErrUnsafe, "a binary others can write to")
	require.NoError(t, os.Chmod(filepath.Join(dir, "chaos-plugin-good"), 0o755))

	require.NoError(t, os.Symlink(filepath.Join(dir, "chaos-plugin-good"), filepath.Join(dir, "chaos-plugin-alias")))
	_, err = source(dir, lock).Command("alias")
	require.ErrorIs(t, err, plugindir.ErrUnsafe, "a plugin that is a symlink is never followed")
}

func TestNotInstalled(t *testing.T) {
	_, err := source(privateDir(t), "").Command("nope")
	require.ErrorIs(t, err, plugindir.ErrNotInstalled)
	_, err = source(filepath.Join(t.TempDir(), "missing"), "").Command("nope")
	require.ErrorIs(t, err, plugindir.ErrNotInstalled, "a plugin directory that does not exist holds nothing")
}

func TestLockFileProblemsArePositioned(t *testing.T) {
	_, err := plugindir.ParseLock("p.lock", []byte("a 1 sha256:xyz\n\n  B 1 sha256:"+hex.EncodeToString(make([]byte, 32))+"\nc 1\n"))
	require.ErrorIs(t, err, plugindir.ErrBadLock)
	require.Contains(t, err.Error(), `p.lock:1:5: "sha256:xyz" is not a checksum`)
	require.Contains(t, err.Error(), `p.lock:3:3: "B" is not a plugin name`)
	require.Contains(t, err.Error(), `p.lock:4:1: want`)

	sum := hex.EncodeToString(make([]byte, 32))
	_, err = plugindir.ParseLock("p.lock", []byte("a 1 sha256:"+sum+"\na 2 sha256:"+sum+"\n"))
	require.ErrorIs(t, err, plugindir.ErrBadLock)
	require.Contains(t, err.Error(), "p.lock:2:1: a is pinned twice (first at line 1)")
}

func TestLockRoundTrip(t *testing.T) {
	sum := hex.EncodeToString(make([]byte, 32))
	l := &plugindir.Lock{Pins: map[string]plugindir.Pin{
		"b": {Name: "b", Version: "2.0.0", SHA256: sum},
		"a": {Name: "a", Version: "1.0.0", SHA256: sum},
	}}
	path := filepath.Join(t.TempDir(), plugindir.LockFileName)
	require.NoError(t, plugindir.WriteLock(path, l))
	back, err := plugindir.ReadLock(path)
	require.NoError(t, err, "what WriteLock writes, ReadLock reads")
	require.Len(t, back.Pins, 2)
	require.Equal(t, "2.0.0", back.Pins["b"].Version)
	text, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Regexp(t, `(?s)^#.*\na 1\.0\.0 sha256:0+\nb 2\.0\.0 sha256:0+\n$`, string(text), "pins are sorted, one a line, after the header")
}

func TestFindLock(t *testing.T) {
	expDir, pdir := t.TempDir(), t.TempDir()
	exp := filepath.Join(expDir, "x.yaml")
	require.Equal(t, "", plugindir.FindLock("", exp, pdir), "no lock file anywhere")
	require.NoError(t, os.WriteFile(filepath.Join(pdir, plugindir.LockFileName), nil, 0o644))
	require.Equal(t, filepath.Join(pdir, plugindir.LockFileName), plugindir.FindLock("", exp, pdir), "the plugin directory's")
	require.NoError(t, os.WriteFile(filepath.Join(expDir, plugindir.LockFileName), nil, 0o644))
	require.Equal(t, filepath.Join(expDir, plugindir.LockFileName), plugindir.FindLock("", exp, pdir), "the one next to the experiment wins")
	require.Equal(t, "given.lock", plugindir.FindLock("given.lock", exp, pdir), "the flag wins")
}
