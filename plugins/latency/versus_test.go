package latency_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/internal/proctest"
	"github.com/chaos-run/chaos/plugins/latency"
)

// The side-by-side benchmark against toxiproxy (issue 13), run by
// scripts/bench.sh with CHAOS_TOXIPROXY set to a toxiproxy server binary
// (v2.12.0, installed into .cache/bench). Both proxies run as processes of
// their own, so the CPU each uses is read from /proc; both face the same
// echo and sink servers over loopback. It prints figures and asserts only
// what must never happen (a lost or reordered byte, a hang); speed is
// reported, never asserted.

// childEnv makes the test binary a proxy process: "LISTEN UPSTREAM".
const childEnv = "CHAOS_BENCH_PROXY"

// idealEnv makes the test binary the ideal delay line: "UPSTREAM DELAY".
const idealEnv = "CHAOS_BENCH_IDEAL"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(proxyChild(spec))
	}
	if spec := os.Getenv(idealEnv); spec != "" {
		os.Exit(idealChild(spec))
	}
	os.Exit(m.Run())
}

// proxyChild runs one proxy and takes its settings on stdin, one line each:
// "shape DELAY JITTER DIST DIRECTION"; it answers "ok" when the setting is
// in effect. "stats" answers "DELAYED LATE MAXLATE" of its Stats. It ends
// when stdin does.
func proxyChild(spec string) int {
	f := strings.Fields(spec)
	p, err := latency.Listen(f[0], f[1])
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("addr", p.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		switch {
		case len(w) == 5 && w[0] == "shape":
			d, _ := time.ParseDuration(w[1])
			j, _ := time.ParseDuration(w[2])
			p.SetShape(latency.Shape{Delay: d, Jitter: j, Distribution: latency.Distribution(w[3]), Direction: latency.Direction(w[4]), Share: 1})
		case len(w) == 1 && w[0] == "stats":
			st := p.Stats()
			fmt.Println(st.Delayed, st.Late, st.MaxLate)
			continue
		}
		fmt.Println("ok")
	}
	_ = p.Close()
	return 0
}

// idealChild is the yardstick of the overshoot: a delay line that is exact
// by construction and pays no wake-up of its own. One thread polls both
// sides of each connection without ever blocking and writes each read
// exactly DELAY after it, spinning all along (a whole core: a yardstick,
// not a product). What a client measures through it over 2 x DELAY is
// what the client, the echo server and the sockets add, which any delay
// on the path pays.
func idealChild(spec string) int {
	f := strings.Fields(spec)
	delay, err := time.ParseDuration(f[1])
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("addr", ln.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // ends with stdin
	runtime.LockOSThread()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 1
		}
		u, err := net.Dial("tcp", f[0])
		if err != nil {
			_ = c.Close()
			continue
		}
		spinForward(c.(*net.TCPConn), u.(*net.TCPConn), delay)
		_ = c.Close()
		_ = u.Close()
	}
}

// spinForward moves bytes both ways between a and b, each DELAY after it
// was read, polling without blocking until either side ends.
func spinForward(a, b *net.TCPConn, delay time.Duration) {
	type held struct {
		data []byte
		due  time.Time
	}
	type side struct {
		raw  syscall.RawConn
		to   *net.TCPConn
		q    []held
		done bool
	}
	ra, _ := a.SyscallConn()
	rb, _ := b.SyscallConn()
	sides := []*side{{raw: ra, to: b}, {raw: rb, to: a}}
	buf := make([]byte, 64<<10)
	for !sides[0].done && !sides[1].done {
		for _, s := range sides {
			var n int
			var rerr error
			_ = s.raw.Read(func(fd uintptr) bool {
				n, rerr = syscall.Read(int(fd), buf)
				return true // never wait in the poller
			})
			now := time.Now()
			switch {
			case n > 0:
				s.q = append(s.q, held{bytes.Clone(buf[:n]), now.Add(delay)})
			case n == 0 && rerr == nil, rerr != nil && rerr != syscall.EAGAIN:
				s.done = true
			}
			for len(s.q) > 0 && !now.Before(s.q[0].due) {
				if _, err := s.to.Write(s.q[0].data); err != nil {
					s.done = true
				}
				s.q = s.q[1:]
			}
		}
	}
}

// startChild starts the test binary as a child of the kind env names
// (env is "NAME=SPEC"), which says "addr ADDR" first and ends when its
// stdin does, and returns its address, its stdin and the rest of its
// output.
func startChild(t *testing.T, env string) (cmd *exec.Cmd, addr string, stdin io.WriteCloser, lines *bufio.Scanner) {
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	lines = bufio.NewScanner(stdout)
	require.True(t, lines.Scan())
	addr, ok := strings.CutPrefix(lines.Text(), "addr ")
	require.True(t, ok, "the child says its address first: %s", lines.Text())
	return cmd, addr, stdin, lines
}

// startIdeal starts the ideal delay line to upstream with delay.
func startIdeal(t *testing.T, upstream string, delay time.Duration) string {
	_, addr, _, _ := startChild(t, idealEnv+"="+upstream+" "+delay.String())
	return addr
}

// proc is a proxy process under test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	set  func(d, j time.Duration, dist, dir string) // the fault, in effect when it returns
	// stats, for chaos's proxy, is its own count of delayed chunks, of
	// those released more than latency.LateAfter past their due time,
	// and the latest release so far.
	stats func() (delayed, late int64, maxLate string)
}

// cpu is the CPU time the process used so far (user + system).
func (p *proc) cpu() time.Duration { return proctest.CPU(p.cmd.Process.Pid) }

func startChaosProxy(t *testing.T, upstream string) *proc {
	cmd, addr, stdin, lines := startChild(t, childEnv+"=127.0.0.1:0 "+upstream)
	return &proc{cmd: cmd, addr: addr, set: func(d, j time.Duration, dist, dir string) {
		_, err := fmt.Fprintf(stdin, "shape %s %s %s %s\n", d, j, dist, dir)
		require.NoError(t, err)
		require.True(t, lines.Scan())
	}, stats: func() (delayed, late int64, maxLate string) {
		_, err := fmt.Fprintln(stdin, "stats")
		require.NoError(t, err)
		require.True(t, lines.Scan())
		_, err = fmt.Sscan(lines.Text(), &delayed, &late, &maxLate)
		require.NoError(t, err, "stats line %q", lines.Text())
		return delayed, late, maxLate
	}}
}

func startToxiproxy(t *testing.T, bin, upstream string) *proc {
	api := freeAddr(t)
	host, port, _ := net.SplitHostPort(api)
	cmd := exec.Command(bin, "-host", host, "-port", port)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + api
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path, body string) (int, error) {
		resp, err := client.Post(base+path, "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	listen := freeAddr(t)
	require.Eventually(t, func() bool {
		code, err := post("/proxies", fmt.Sprintf(`{"name":"b","listen":%q,"upstream":%q,"enabled":true}`, listen, upstream))
		return err == nil && code == http.StatusCreated
	}, hangGuard, 20*time.Millisecond, "toxiproxy takes the proxy")
	live := map[string]bool{}
	return &proc{cmd: cmd, addr: listen, set: func(d, j time.Duration, _, dir string) {
		for _, stream := range []string{"upstream", "downstream"} {
			if live[stream] {
				req, _ := http.NewRequest(http.MethodDelete, base+"/proxies/b/toxics/"+stream, nil)
				resp, err := client.Do(req)
				require.NoError(t, err, "toxiproxy removes a toxic (a hang here is toxiproxy's #412/#558)")
				_ = resp.Body.Close()
				live[stream] = false
			}
			want := dir == "both" || (dir == "to-upstream" && stream == "upstream") || (dir == "to-client" && stream == "downstream")
			if d > 0 && want {
				code, err := post("/proxies/b/toxics", fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`,
					stream, stream, d.Milliseconds(), j.Milliseconds()))
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, code, "toxiproxy adds a latency toxic")
				live[stream] = true
			}
		}
	}}
}

// echoRTTs sends n 64-byte messages on one connection and returns each
// round trip.
func echoRTTs(t testing.TB, addr string, n int) []time.Duration {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		_, err := c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		out = append(out, time.Since(start))
	}
	return out
}

// stallOver is how late a watchStalls wake must be to count as a stall.
const stallOver = time.Millisecond

// watchStalls starts a thread that sleeps 5 ms at a time and notes each
// wake more than stallOver late: a pause of the whole machine (a virtual
// machine whose host stops it for a while), which every process meets,
// the proxies included. Calling the function it returns stops it and
// says how many stalls it saw, and the longest. Reported beside the
// overshoot, so that a p99 that a stall made is told from the proxy's own.
func watchStalls() func() (n int, longest time.Duration) {
	stop, done := make(chan struct{}), make(chan struct{})
	var n int
	var longest time.Duration
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		const period = 5 * time.Millisecond
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			latency.SleepPrecise(period)
			if late := time.Since(start) - period; late > stallOver {
				n, longest = n+1, max(longest, late)
			}
		}
	}()
	return func() (int, time.Duration) {
		close(stop)
		<-done
		return n, longest
	}
}

// stampMsg is the size of a message of the measurement at the sockets.
const stampMsg = 64

// readStamped reads exactly len(buf) bytes and returns when the last of
// them arrived in the kernel.
func readStamped(r *latency.Stamped, buf []byte) (time.Time, error) {
	var at time.Time
	for got := 0; got < len(buf); {
		n, arrived, err := latency.ReadStamped(r, buf[got:])
		if n == 0 && err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return at, err
		}
		got, at = got+n, arrived
	}
	return at, nil
}

// stampedEcho answers each stampMsg-byte message at once, with the
// kernel's arrival time of the message in its first 8 bytes and the time
// the answer is written in the next 8 (Unix nanoseconds, the wall clock
// that receive stamps are on).
func stampedEcho(c *net.TCPConn) {
	r := latency.NewStamped(c)
	if r == nil {
		return
	}
	buf := make([]byte, stampMsg)
	for {
		at, err := readStamped(r, buf)
		if err != nil {
			return
		}
		binary.BigEndian.PutUint64(buf[0:8], uint64(at.UnixNano()))
		binary.BigEndian.PutUint64(buf[8:16], uint64(time.Now().UnixNano()))
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// stampedRTTs sends n messages to a stampedEcho through addr, the client
// idle for idle before each, and returns two durations per round trip:
// what the client measured (from before its write to after its read), and
// what the path took at the sockets (from the client's write to the
// message's arrival at the echo's socket, plus from the echo's write to the
// answer's arrival at the client's socket). The second leaves out both
// ends' own wake-up and the echo's turnaround: it is the time the bytes
// spent between the sockets, the part a delay on the path is responsible
// for.
func stampedRTTs(t testing.TB, addr string, idle time.Duration, n int) (app, path []time.Duration) {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	r := latency.NewStamped(c.(*net.TCPConn))
	require.NotNil(t, r, "loopback sockets take receive timestamps")
	msg, buf := make([]byte, stampMsg), make([]byte, stampMsg)
	for range n {
		if idle > 0 {
			time.Sleep(idle) // the idle being measured, not a wait for something
		}
		start := time.Now()
		_, err := c.Write(msg)
		require.NoError(t, err)
		back, err := readStamped(r, buf)
		require.NoError(t, err)
		app = append(app, time.Since(start))
		echoArrived := time.Unix(0, int64(binary.BigEndian.Uint64(buf[0:8])))
		echoSent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[8:16])))
		path = append(path, echoArrived.Sub(start.Round(0))+back.Round(0).Sub(echoSent))
	}
	return app, path
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(p/100*float64(len(s))))-1)]
}

// sinkServer reads a length (8 bytes, big endian), then that many bytes,
// and answers one byte. No half-close: toxiproxy does not pass one on.
func sinkServer(c *net.TCPConn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint64(hdr[:])))
	_, _ = c.Write([]byte{1})
}

// throughput sends size bytes through addr to the sink, in MB/s.
func throughput(t testing.TB, addr string, size int) float64 {
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 256<<10)
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	start := time.Now()
	_, err = c.Write(hdr[:])
	require.NoError(t, err)
	for sent := 0; sent < size; sent += len(buf) {
		_, err := c.Write(buf)
		require.NoError(t, err)
	}
	_, err = io.ReadFull(c, buf[:1])
	require.NoError(t, err)
	return float64(size) / 1e6 / time.Since(start).Seconds()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func TestVersusToxiproxy(t *testing.T) {
	bin := os.Getenv("CHAOS_TOXIPROXY")
	if bin == "" {
		t.Skip("CHAOS_TOXIPROXY is not set: scripts/bench.sh installs toxiproxy v2.12.0 and sets it")
	}
	echoSrv := startServer(t, echo)
	sink := startServer(t, sinkServer)
	stampSrv := startServer(t, stampedEcho)
	type side struct {
		name              string
		echo, sink, stamp *proc
	}
	sides := []side{
		{"chaos", startChaosProxy(t, echoSrv.addr()), startChaosProxy(t, sink.addr()), startChaosProxy(t, stampSrv.addr())},
		{"toxiproxy", startToxiproxy(t, bin, echoSrv.addr()), startToxiproxy(t, bin, sink.addr()), startToxiproxy(t, bin, stampSrv.addr())},
	}
	report := func(format string, args ...any) { fmt.Printf("versus: "+format+"\n", args...) }

	// Added round trip, no delay: median over 20,000 echoes, minus direct.
	const n = 20000
	direct := pct(echoRTTs(t, echoSrv.addr(), n), 50)
	added := map[string]time.Duration{}
	for _, s := range sides {
		added[s.name] = pct(echoRTTs(t, s.echo.addr, n), 50) - direct
	}
	report("added round trip, 64 B echo, no delay: chaos %s, toxiproxy %s, ratio %.2f (direct %s)",
		time.Duration(added["chaos"]), time.Duration(added["toxiproxy"]), float64(added["chaos"])/float64(added["toxiproxy"]), direct)

	// One-stream throughput, no delay.
	const size = 1 << 30
	directTP := throughput(t, sink.addr(), size)
	tp := map[string]float64{}
	for _, s := range sides {
		tp[s.name] = throughput(t, s.sink.addr, size)
	}
	report("one-stream throughput, no delay: chaos %.0f MB/s, toxiproxy %.0f MB/s, ratio %.2f (direct %.0f MB/s)",
		tp["chaos"], tp["toxiproxy"], tp["chaos"]/tp["toxiproxy"], directTP)

	// Overshoot over 2D, and the CPU each proxy spent doing it, measured
	// twice in each round trip (see stampedRTTs): as the client sees it
	// ("app"), and at the sockets ("path"): the time the bytes spent
	// between the client's write and the echo's socket and back, which
	// leaves out the client's and the echo server's own wake-up after
	// idling about D (a thread woken after a long sleep on a virtual
	// machine is late whatever woke it). The floor is the same
	// measurement on a direct connection after the client idled 2D.
	for _, d := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond} {
		// At least 100 round trips, so that p99 is not simply the largest.
		count := max(100, int(min(2000, 4*time.Second/(2*d))))
		floorApp, floorPath := stampedRTTs(t, stampSrv.addr(), 2*d, min(count, 50))
		line := fmt.Sprintf("D=%s, %d round trips: floor (direct after %s idle) app p50 %s path p50 %s;", d, count, 2*d, ms(pct(floorApp, 50)), ms(pct(floorPath, 50)))
		idealApp, idealPath := stampedRTTs(t, startIdeal(t, stampSrv.addr(), d), 0, min(count, 200))
		for i := range idealApp {
			idealApp[i] -= 2 * d
			idealPath[i] -= 2 * d
		}
		line += fmt.Sprintf(" ideal delay line (a spinning poller, exact by construction) overshoot app p50 %s p99 %s, path p50 %s p99 %s;",
			ms(pct(idealApp, 50)), ms(pct(idealApp, 99)), ms(pct(idealPath, 50)), ms(pct(idealPath, 99)))
		for _, s := range sides {
			s.stamp.set(d, 0, "uniform", "both")
			var delayed0, late0 int64
			if s.stamp.stats != nil {
				delayed0, late0, _ = s.stamp.stats()
			}
			cpu0, wall0 := s.stamp.cpu(), time.Now()
			stalls := watchStalls()
			app, path := stampedRTTs(t, s.stamp.addr, 0, count)
			stalled, longest := stalls()
			cpu := s.stamp.cpu() - cpu0
			wall := time.Since(wall0)
			s.stamp.set(0, 0, "uniform", "both")
			for i := range app {
				app[i] -= 2 * d
				path[i] -= 2 * d
			}
			line += fmt.Sprintf(" %s overshoot app p50 %s p99 %s, path p50 %s p99 %s, cpu %.1f%% (%s in %s), machine stalls over %s: %d, longest %s;", s.name,
				ms(pct(app, 50)), ms(pct(app, 99)), ms(pct(path, 50)), ms(pct(path, 99)), 100*cpu.Seconds()/wall.Seconds(), cpu, wall.Round(time.Millisecond),
				stallOver, stalled, ms(longest))
			if s.stamp.stats != nil {
				delayed, late, maxLate := s.stamp.stats()
				line += fmt.Sprintf(" (its own releases: %d of %d more than %s late, latest so far %s);", late-late0, delayed-delayed0, latency.LateAfter, maxLate)
			}
		}
		report("%s", line)
	}

	// Jitter: the observed distribution against the requested one, one
	// direction so that each round trip holds one sample.
	for _, dist := range []string{"uniform", "normal"} {
		const d, j = 20 * time.Millisecond, 5 * time.Millisecond
		s := sides[0]
		s.echo.set(d, j, dist, "to-upstream")
		rtts := echoRTTs(t, s.echo.addr, 300)
		s.echo.set(0, 0, "uniform", "both")
		var sum, sq float64
		lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
		for _, r := range rtts {
			sum += float64(r)
			lo, hi = min(lo, r), max(hi, r)
		}
		mean := sum / float64(len(rtts))
		for _, r := range rtts {
			sq += (float64(r) - mean) * (float64(r) - mean)
		}
		sd := math.Sqrt(sq / float64(len(rtts)-1))
		want := "bounds [15 ms, 25 ms], mean 20 ms, deviation 2.887 ms"
		if dist == "normal" {
			want = "mean 20 ms, deviation 5 ms (cut at 0 and 40 ms)"
		}
		report("jitter %s, delay 20ms jitter 5ms one way, 300 samples: min %s max %s mean %s deviation %s (requested: %s)",
			dist, ms(lo), ms(hi), ms(time.Duration(mean)), ms(time.Duration(sd)), want)
		if dist == "uniform" {
			require.GreaterOrEqual(t, lo, d-j, "no sample below the uniform bound")
		}
	}

	// Inject and revert under traffic, 1,000 cycles: a checksummed stream
	// runs through each proxy the whole time; no hang, no lost byte.
	for _, s := range sides {
		c, err := net.Dial("tcp", s.echo.addr)
		require.NoError(t, err)
		sent, got := sha256.New(), sha256.New()
		done := make(chan int64, 1)
		go func() { n, _ := io.Copy(got, c); done <- n }()
		stop := make(chan struct{})
		var total int64
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			chunk := make([]byte, 8<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = rand.Read(chunk)
				sent.Write(chunk)
				if _, err := c.Write(chunk); err != nil {
					return
				}
				total += int64(len(chunk))
			}
		}()
		start := time.Now()
		var slowest time.Duration
		for range 1000 {
			t0 := time.Now()
			s.echo.set(time.Millisecond, 0, "uniform", "both")
			s.echo.set(0, 0, "uniform", "both")
			slowest = max(slowest, time.Since(t0))
		}
		took := time.Since(start)
		close(stop)
		<-wrote
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		var back int64
		select {
		case back = <-done:
		case <-time.After(hangGuard):
			require.FailNow(t, s.name+" hung: the echo of the stream did not end")
		}
		_ = c.Close()
		ok := back == total && bytes.Equal(sent.Sum(nil), got.Sum(nil))
		report("inject/revert under traffic, %s: 1000 cycles in %s (slowest cycle %s), %d bytes streamed, %d echoed, checksums agree: %v",
			s.name, took.Round(time.Millisecond), slowest.Round(time.Microsecond), total, back, ok)
		if s.name == "chaos" {
			require.True(t, ok, "the chaos proxy loses no byte across inject and revert")
		}
	}
}
