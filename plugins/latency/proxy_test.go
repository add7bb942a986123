package latency_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/chaos-run/chaos/plugins/latency"
)

// hangGuard bounds how long a test waits for something that must happen, so a
// bug fails the test instead of hanging it. It is never a timing assertion.
const hangGuard = 30 * time.Second

// noLeaks checks, after every other cleanup of the test has run, that
// neither the proxy nor the test servers left a goroutine behind.
func noLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// server is a real TCP server on 127.0.0.1 that runs handle for each
// connection and waits for all of them on cleanup.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startServer(t *testing.T, handle func(*net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "the test server needs a free loopback port")
	s := &server{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

// echo copies everything back and half-closes when the client does.
func echo(c *net.TCPConn) {
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
}

func listen(t testing.TB, upstream string) *latency.Proxy {
	t.Helper()
	p, err := latency.Listen("127.0.0.1:0", upstream)
	require.NoError(t, err, "the proxy must bind a free loopback port")
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err, "the proxy must accept connections on its address")
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(hangGuard)))
	return c.(*net.TCPConn)
}

// waitHeld waits until the proxy holds n bytes back, that is, until the data
// under test was read by the proxy and is waiting out its delay.
func waitHeld(t *testing.T, p *latency.Proxy, n int64, why string) {
	t.Helper()
	require.Eventually(t, func() bool { return p.Stats().BytesHeld == n },
		hangGuard, time.Millisecond, "the proxy should hold %d bytes: %s", n, why)
}

func TestProxyPassThroughLargePayload(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	c := dial(t, p.Addr())

	payload := make([]byte, 4<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)

	var wg sync.WaitGroup
	var writeErr error
	wg.Go(func() {
		_, writeErr = c.Write(payload)
		if writeErr == nil {
			writeErr = c.CloseWrite()
		}
	})
	got, err := io.ReadAll(c)
	wg.Wait()
	require.NoError(t, writeErr, "writing the payload through the proxy should succeed")
	require.NoError(t, err, "the echo should come back and end with EOF after our half-close")
	require.Equal(t, sha256.Sum256(payload), sha256.Sum256(got),
		"a pass-through proxy must forward every byte intact and in order, both ways")

	st := p.Stats()
	require.EqualValues(t, 1, st.Accepted, "one client connected")
	require.EqualValues(t, len(payload), st.BytesToUpstream, "all bytes counted client→upstream")
	require.EqualValues(t, len(payload), st.BytesToClient, "all bytes counted upstream→client")
	require.Zero(t, st.BytesHeld, "nothing is held once everything was delivered")
}

func TestProxyJitterKeepsOrder(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	// Jitter larger than the delay draws due times that go backwards from one
	// chunk to the next; the proxy must still deliver every chunk, in order.
	p.SetDelay(time.Millisecond, 2*time.Millisecond)
	c := dial(t, p.Addr())

	payload := make([]byte, 1<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Small writes make many chunks, each with its own jitter.
		for b := payload; len(b) > 0; b = b[min(len(b), 4096):] {
			if _, err := c.Write(b[:min(len(b), 4096)]); err != nil {
				return
			}
		}
		_ = c.CloseWrite()
	})
	got, err := io.ReadAll(c)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256(payload), sha256.Sum256(got),
		"jitter must never reorder or drop data")
}

func TestProxyDelayRoundTripHTTP(t *testing.T) {
	noLeaks(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "pong")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })

	p := listen(t, ln.Addr().String())
	const delay = 50 * time.Millisecond
	p.SetDelay(delay, 0)
	d, j := p.Delay()
	require.Equal(t, delay, d, "Delay reports what SetDelay set")
	require.Zero(t, j, "Delay reports what SetDelay set")

	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: hangGuard}

	start := time.Now()
	resp, err := client.Get("http://" + p.Addr() + "/")
	require.NoError(t, err, "the request should pass through the delayed proxy")
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	elapsed := time.Since(start)

	require.Equal(t, "pong", string(body), "the response must arrive intact")
	// The request is delayed on the way in and the response on the way out.
	require.GreaterOrEqual(t, elapsed, 2*delay,
		"a round trip through the proxy must take at least the delay in each direction")
	st := p.Stats()
	require.GreaterOrEqual(t, st.Delayed, int64(2), "the request and the response were delayed chunks")
	require.LessOrEqual(t, st.Late, st.Delayed, "late releases are some of the delayed ones")
	require.GreaterOrEqual(t, st.MaxLate, time.Duration(0))
}

func TestProxyRevertDeliversPendingData(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	// A delay no test could wait out: the data can only arrive if SetDelay(0,0)
	// interrupts the wait.
	p.SetDelay(time.Hour, 0)
	c := dial(t, p.Addr())

	_, err := c.Write([]byte("first"))
	require.NoError(t, err)
	waitHeld(t, p, 5, "the first chunk is waiting out the hour")
	_, err = c.Write([]byte("second"))
	require.NoError(t, err)
	waitHeld(t, p, 11, "both chunks are waiting out the hour")

	p.SetDelay(0, 0)

	got := make([]byte, len("firstsecond"))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err, "ending the fault must deliver the waiting chunks, not wait out the delay")
	require.Equal(t, "firstsecond", string(got), "waiting chunks must be delivered in order")
	require.Zero(t, p.Stats().Late, "chunks a revert released early are not late")
}

func TestProxyLowerDelayShortensWait(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	p.SetDelay(time.Hour, 0)
	c := dial(t, p.Addr())

	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	waitHeld(t, p, 1, "the chunk is waiting out the hour")

	p.SetDelay(time.Millisecond, 0)

	got := make([]byte, 1)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err, "lowering the delay must not leave a chunk waiting for the old, longer one")
}

func TestProxyCloseDeliversPendingData(t *testing.T) {
	noLeaks(t)
	received := make(chan []byte, 1)
	up := startServer(t, func(c *net.TCPConn) {
		_, _ = c.Write([]byte("greeting"))
		b, _ := io.ReadAll(c)
		received <- b
	})
	p, err := latency.Listen("127.0.0.1:0", up.addr())
	require.NoError(t, err)
	p.SetDelay(time.Hour, 0)
	c := dial(t, p.Addr())

	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	waitHeld(t, p, int64(len("hello")+len("greeting")), "data in both directions is waiting out the hour")

	require.NoError(t, p.Close(), "closing the proxy should succeed")
	require.NoError(t, p.Close(), "closing twice must be safe")

	got, err := io.ReadAll(c)
	require.NoError(t, err, "the client should see its pending data and then a clean EOF")
	require.Equal(t, "greeting", string(got), "Close must deliver data already read from the upstream")
	select {
	case b := <-received:
		require.Equal(t, "hello", string(b), "Close must deliver data already read from the client")
	case <-time.After(hangGuard):
		t.Fatal("the upstream never saw the end of the stream after Close")
	}

	_, err = net.Dial("tcp", p.Addr())
	require.Error(t, err, "the listen port must refuse connections after Close")
}

func TestProxyUpstreamDownClosesClient(t *testing.T) {
	noLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := ln.Addr().String()
	require.NoError(t, ln.Close(), "the upstream port is freed so dials to it are refused")

	p := listen(t, down)
	c := dial(t, p.Addr())
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "a client whose upstream cannot be reached must see its connection closed")
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(),
		"the client must be closed by the proxy, not left to hit its own deadline: %v", err)
	require.EqualValues(t, 1, p.Stats().Accepted, "the client was accepted before the dial failed")
}

func TestProxyHalfClose(t *testing.T) {
	noLeaks(t)
	// The upstream answers only after the client's half-close reaches it, so
	// the answer proves the EOF was propagated and the other direction still works.
	up := startServer(t, func(c *net.TCPConn) {
		b, err := io.ReadAll(c)
		if err != nil {
			return
		}
		_, _ = c.Write(append([]byte("got:"), b...))
		_ = c.CloseWrite()
	})
	p := listen(t, up.addr())
	p.SetDelay(time.Millisecond, 0)
	c := dial(t, p.Addr())

	_, err := c.Write([]byte("abc"))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the upstream's half-close should reach the client as EOF")
	require.Equal(t, "got:abc", string(got),
		"the client's half-close must reach the upstream after its data, and the reply must still flow back")
}

func TestProxyCloseWithoutConnections(t *testing.T) {
	noLeaks(t)
	p, err := latency.Listen("127.0.0.1:0", "127.0.0.1:1")
	require.NoError(t, err)
	require.NoError(t, p.Close(), "closing an idle proxy should succeed")
	require.NoError(t, p.Close(), "closing twice must be safe")
}

func TestListenBadAddress(t *testing.T) {
	_, err := latency.Listen("127.0.0.1:-1", "127.0.0.1:1")
	require.Error(t, err, "an address that cannot be bound must fail Listen, not later")
}
