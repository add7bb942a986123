package main

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/chaos-run/chaos/safety"
)

// startTimeout bounds how long a script waits for the demo service to say it
// is ready. It is generous on purpose: it only matters when something is
// broken, and a busy machine must not make a healthy run fail.
const startTimeout = time.Minute

// TestScripts runs the CLI scripts in testdata/script against the real
// binaries. In-process testscript.RunMain is not an option: chaos re-executes
// itself (os.Executable) to serve its built-in plugins, so the binary under
// test must be the real chaos, not the test binary.
func TestScripts(t *testing.T) {
	bin := buildBinaries(t)
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", bin+string(os.PathListSeparator)+env.Getenv("PATH"))
			// chaos keeps its ledger and target locks in $XDG_STATE_HOME/chaos;
			// each script has its own, inside its work directory (HOME is
			// /no-home in a script).
			env.Setenv("XDG_STATE_HOME", filepath.Join(env.WorkDir, ".state"))
			env.Values[demoKey{}] = &demo{bin: filepath.Join(bin, "demo-shop")}
			env.Values[smtpKey{}] = &smtpHolder{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":   cmdExitcode,
			"freeport":   cmdFreeport,
			"subst":      cmdSubst,
			"listening":  cmdListening,
			"startdemo":  cmdStartDemo,
			"stopdemo":   cmdStopDemo,
			"locktarget": cmdLockTarget,
			"openentry":  cmdOpenEntry,
			"nosecret":   cmdNoSecret,
			"webhook":    cmdWebhook,
			"smtpserver": cmdSMTPServer,
			"mailbox":    cmdMailbox,
		},
	})
}

// buildBinaries builds chaos and demo-shop into a directory of the test.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"github.com/chaos-run/chaos/cmd/chaos", "github.com/chaos-run/chaos/cmd/demo-shop")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build chaos and demo-shop for the scripts: %v\n%s", err, out)
	}
	return dir
}

// cmdExitcode runs a command and checks its exact exit status:
//
//	exitcode N command [args...]
//
// Its stdout and stderr are then what the stdout and stderr commands check,
// as after exec. `! exec` only says "not zero"; the exit codes of chaos are
// its contract with pipelines, so scripts check the exact one.
func cmdExitcode(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exitcode (say the code you expect)")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N command [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %q is not a number", args[0])
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %s did not run: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with code %d, want %d", args[1], got, want)
	}
}

// cmdFreeport sets each named variable to a loopback port that was free a
// moment ago, for a listener the script starts later (the latency proxy).
func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: freeport NAME...")
	}
	// Below the kernel's ephemeral range: a port from it, once released
	// here, may be handed to the next listener on port 0 (a webhook or
	// mail server the script starts) before the experiment binds it.
	below := ephemeralLow()
	taken := map[int]bool{}
	for _, name := range args {
		port := 0
		for try := 0; port == 0; try++ {
			if try == 1000 {
				ts.Fatalf("freeport: no free port in 10000-%d", below-1)
			}
			p := 10000 + rand.IntN(below-10000)
			if taken[p] {
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue
			}
			ts.Check(ln.Close())
			port, taken[p] = p, true
		}
		ts.Setenv(name, strconv.Itoa(port))
	}
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 11000 {
		return 32768
	}
	return lo
}

var substVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// cmdSubst replaces every ${NAME} in the named files with the script's
// variable NAME. testscript does not expand variables inside archive files,
// and experiment files need the ports a script picked. An unset variable is
// an error, not an empty string: a file with a hole in it is a broken test.
func cmdSubst(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: subst FILE...")
	}
	for _, file := range args {
		path := ts.MkAbs(file)
		data, err := os.ReadFile(path)
		ts.Check(err)
		out := substVar.ReplaceAllStringFunc(string(data), func(m string) string {
			name := substVar.FindStringSubmatch(m)[1]
			v := ts.Getenv(name)
			if v == "" {
				ts.Fatalf("subst %s: $%s is not set", file, name)
			}
			return v
		})
		ts.Check(os.WriteFile(path, []byte(out), 0o644))
	}
}

// cmdListening checks whether something accepts connections on an address:
//
//	listening ADDR     something must
//	! listening ADDR   the connection must be refused
//
// It is meant for moments when the answer is settled (a chaos run has
// exited, so its proxy is closed or never was), so it does not retry.
func cmdListening(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: [!] listening ADDR")
	}
	conn, err := net.DialTimeout("tcp", args[0], 5*time.Second)
	switch {
	case err == nil:
		_ = conn.Close()
		if neg {
			ts.Fatalf("%s accepts connections; nothing should listen there", args[0])
		}
	case neg && errors.Is(err, syscall.ECONNREFUSED):
	case neg:
		ts.Fatalf("dial %s: %v; want the connection refused", args[0], err)
	default:
		ts.Fatalf("nothing listens on %s: %v", args[0], err)
	}
}

type demoKey struct{}

// demo is the demo service of one script.
type demo struct {
	bin     string
	cmd     *exec.Cmd
	drained chan struct{} // closed when its stdout reached EOF
}

// cmdStartDemo starts demo-shop in the background with the given flags and
// waits for its "ready front=ADDR backend=ADDR" line, then sets $FRONT and
// $BACKEND to those addresses. Flags like -front 127.0.0.1:0 let the kernel
// pick the ports, so that scripts running in parallel never collide. Its
// stderr goes to demo.stderr in the work directory. The demo is stopped by
// stopdemo, or killed when the script ends.
func cmdStartDemo(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! startdemo")
	}
	d := ts.Value(demoKey{}).(*demo)
	if d.cmd != nil {
		ts.Fatalf("startdemo: the demo is already running")
	}
	stderr, err := os.Create(ts.MkAbs("demo.stderr"))
	ts.Check(err)
	defer stderr.Close()
	cmd := exec.Command(d.bin, args...)
	cmd.Dir = ts.MkAbs(".")
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	d.cmd, d.drained = cmd, make(chan struct{})
	ts.Defer(func() {
		// Only reached with the demo still running when the script failed
		// before stopdemo; nothing is checked any more, it just must go.
		if d.cmd != nil {
			_ = d.cmd.Process.Kill()
			<-d.drained
			_ = d.cmd.Wait()
		}
	})

	ready := make(chan string, 1)
	go func() {
		defer close(d.drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready ") && len(ready) == 0 {
				ready <- line
			}
		}
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-ready:
	case <-d.drained:
		select {
		case line = <-ready:
		default:
			ts.Fatalf("demo-shop exited before it was ready; see demo.stderr:\n%s", ts.ReadFile("demo.stderr"))
		}
	case <-timer.C:
		ts.Fatalf("demo-shop did not say ready within %s; see demo.stderr:\n%s", startTimeout, ts.ReadFile("demo.stderr"))
	}
	for _, f := range strings.Fields(line)[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			ts.Fatalf("startdemo: cannot read %q in %q", f, line)
		}
		ts.Setenv(strings.ToUpper(k), v)
	}
	ts.Logf("demo-shop: %s", line)
}

// cmdStopDemo stops the demo the way an operator does (SIGINT) and checks
// that it shut down cleanly.
func cmdStopDemo(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: stopdemo")
	}
	d := ts.Value(demoKey{}).(*demo)
	if d.cmd == nil {
		ts.Fatalf("stopdemo: no demo is running")
	}
	cmd := d.cmd
	d.cmd = nil
	ts.Check(cmd.Process.Signal(os.Interrupt))
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-d.drained:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-d.drained
		_ = cmd.Wait()
		ts.Fatalf("demo-shop did not stop within %s of SIGINT; see demo.stderr:\n%s", startTimeout, ts.ReadFile("demo.stderr"))
	}
	if err := cmd.Wait(); err != nil {
		ts.Fatalf("demo-shop did not stop cleanly: %v; see demo.stderr:\n%s", err, ts.ReadFile("demo.stderr"))
	}
}

// cmdLockTarget takes the lock on a target key in a state directory, as
// another run would, and holds it until the script ends:
//
//	locktarget DIR KEY
//
// It is the real lock of package safety, held by this process.
func cmdLockTarget(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: locktarget DIR KEY")
	}
	l, err := safety.LockTargets(ts.MkAbs(args[0]), []string{args[1]}, "20261201T000000-0ther")
	ts.Check(err)
	ts.Defer(func() { _ = l.Release() })
}

// cmdOpenEntry writes a ledger entry for a fault on a target key that was
// never confirmed reverted, as a runner killed mid-fault leaves it:
//
//	openentry DIR KEY
func cmdOpenEntry(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: openentry DIR KEY")
	}
	l, err := safety.OpenLedger(ts.MkAbs(args[0]))
	ts.Check(err)
	const run = "20261201T000000-dead00"
	ts.Check(l.Intend(safety.Entry{
		ID: run + "/fault-0", RunID: run, Plugin: "latency", TargetKey: args[1],
		RunnerPID: 1 << 22, LeaseTTL: 10 * time.Second, Experiment: "killed",
	}))
}
