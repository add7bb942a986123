package latency_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/latency"
	"github.com/chaos-run/chaos/plugins/sdk"
)

// chunkSize mirrors the proxy's largest read: the most a reader can hold
// beyond its share while it is being stopped.
const chunkSize = 32 << 10

func endpoint(listen, upstream string) sdk.Target {
	return sdk.Target{Name: "link", Kind: sdk.KindEndpoint, Endpoint: &sdk.EndpointTarget{Listen: listen, Upstream: upstream}}
}

// problemsOf validates params against a plugin and returns the parameters
// it objects to.
func problemsOf(t *testing.T, params string) []string {
	t.Helper()
	probs := latency.New().Validate(t.Context(), sdk.Request{Target: endpoint("127.0.0.1:1", "127.0.0.1:2"), Params: json.RawMessage(params)})
	var out []string
	for _, p := range probs {
		require.True(t, strings.HasPrefix(p.Param, "with."), "a problem names its parameter's path under with: %q", p.Param)
		out = append(out, strings.TrimPrefix(p.Param, "with."))
	}
	return out
}

// TestParamBounds: values past the bounds are refused, each at its own
// parameter; the jitter that once panicked the plugin is one of them.
func TestParamBounds(t *testing.T) {
	for params, want := range map[string]string{
		`{"delay":"1s","jitter":"1500000h"}`:                                      "jitter",
		`{"delay":"2h"}`:                                                          "delay",
		`{"delay":"10ms","jitter":"20ms"}`:                                        "jitter",
		`{"delay":"1s","maxConnections":0}`:                                       "maxConnections",
		`{"delay":"1s","maxConnections":10001}`:                                   "maxConnections",
		`{"delay":"1s","maxConnections":"many"}`:                                  "maxConnections",
		`{"delay":"1s","maxConnections":1.5}`:                                     "maxConnections",
		`{"delay":"1s","maxBytesPerConnection":1}`:                                "maxBytesPerConnection",
		`{"delay":"1s","maxBytesInFlight":2147483648}`:                            "maxBytesInFlight",
		`{"delay":"1s","maxBytesPerConnection":1048576,"maxBytesInFlight":65536}`: "maxBytesInFlight",
	} {
		require.Equal(t, []string{want}, problemsOf(t, params), "%s must be refused at %s, and only there", params, want)
	}
	require.Empty(t, problemsOf(t, `{"delay":"1h","jitter":"1h","maxConnections":10000,"maxBytesPerConnection":67108864,"maxBytesInFlight":1073741824}`),
		"the bounds themselves are allowed")
}

// TestSchemaAgreesWithValidation: every bound the parameter schema publishes
// is the one the plugin enforces, at the bound and one past it, and a real
// JSON Schema implementation refuses the same whole numbers.
func TestSchemaAgreesWithValidation(t *testing.T) {
	raw := latency.New().Describe().ParamsSchema
	var schema struct {
		Properties map[string]map[string]any `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(raw, &schema))
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("latency.json", doc))
	compiled, err := c.Compile("latency.json")
	require.NoError(t, err, "the parameter schema must compile")
	schemaAccepts := func(params string) bool {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(params)))
		require.NoError(t, err)
		return compiled.Validate(v) == nil
	}

	checked := 0
	for name, prop := range schema.Properties {
		if max, ok := prop["x-maximum"].(string); ok {
			d, err := time.ParseDuration(max)
			require.NoError(t, err)
			delay := "1h"
			if name == "delay" {
				delay = max
			}
			with := func(v time.Duration) string {
				if name == "delay" {
					return fmt.Sprintf(`{"delay":%q}`, v)
				}
				return fmt.Sprintf(`{"delay":%q,%q:%q}`, delay, name, v)
			}
			require.Empty(t, problemsOf(t, with(d)), "%s at its published maximum %s must be accepted", name, max)
			require.Equal(t, []string{name}, problemsOf(t, with(d+time.Nanosecond)), "%s past its published maximum %s must be refused", name, max)
			checked++
		}
		// The integer caps; the percentages (share, correlation, loss)
		// belong to other modes or are checked in the intercept tests.
		if _, ok := prop["maximum"]; ok && prop["type"] == "integer" {
			lo, hi := int64(prop["minimum"].(float64)), int64(prop["maximum"].(float64))
			with := func(v int64) string {
				extra := ""
				switch name { // keep the pair consistent: in flight >= per connection
				case "maxBytesPerConnection":
					extra = `,"maxBytesInFlight":1073741824`
				case "maxBytesInFlight":
					extra = `,"maxBytesPerConnection":65536`
				}
				return `{"delay":"1s",` + strconv.Quote(name) + ":" + strconv.FormatInt(v, 10) + extra + "}"
			}
			for _, v := range []int64{lo, hi} {
				require.Empty(t, problemsOf(t, with(v)), "%s=%d is within the published bounds", name, v)
				require.True(t, schemaAccepts(with(v)), "the schema must accept %s=%d", name, v)
			}
			for _, v := range []int64{lo - 1, hi + 1} {
				require.Equal(t, []string{name}, problemsOf(t, with(v)), "%s=%d is past the published bounds", name, v)
				require.False(t, schemaAccepts(with(v)), "the schema must refuse %s=%d", name, v)
			}
			checked++
		}
	}
	require.Equal(t, 5, checked, "delay, jitter and the three caps all publish bounds")
}

// TestHugeJitterDoesNotPanic: a jitter far past any bound, set directly on
// the proxy, is clamped rather than overflowing into rand.Int64N.
func TestHugeJitterDoesNotPanic(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	p.SetDelay(time.Hour, 1_500_000*time.Hour)
	d, j := p.Delay()
	require.Equal(t, latency.MaxDelay, j, "the jitter is clamped to the most the plugin allows")
	require.Equal(t, time.Hour, d)
	c := dial(t, p.Addr())
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	waitHeld(t, p, 1, "the chunk was read and given a due time without a panic")
}

// TestProxyConnectionCap: past maxConnections a client is closed at once
// and counted; a place frees when a connection ends.
func TestProxyConnectionCap(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p, err := latency.ListenOptions("127.0.0.1:0", up.addr(), latency.Options{Limits: latency.Limits{Connections: 2}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })

	roundTrip := func(c *net.TCPConn) error {
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	require.NoError(t, roundTrip(a), "the first connection is within the cap")
	require.NoError(t, roundTrip(b), "the second connection is within the cap")

	// Bounded: a few tries, each one that is refused is counted.
	for i := 1; i <= 3; i++ {
		// The proxy closes with a reset: the connect itself may see it.
		c, err := net.Dial("tcp", p.Addr())
		if err == nil {
			require.NoError(t, c.SetDeadline(time.Now().Add(hangGuard)))
			err = roundTrip(c.(*net.TCPConn))
			_ = c.Close()
		}
		require.Error(t, err, "connection %d past the cap must be closed, not served", i)
		require.Eventually(t, func() bool { return p.Stats().Refused == int64(i) }, hangGuard, time.Millisecond, "every refused connection is counted")
	}
	require.EqualValues(t, 2, p.Stats().Open, "the two within the cap stay open")

	require.NoError(t, a.Close())
	require.Eventually(t, func() bool { return p.Stats().Open == 1 }, hangGuard, time.Millisecond, "a closed connection frees its place")
	require.NoError(t, roundTrip(dial(t, p.Addr())), "a freed place serves the next client")
}

// flood is an upstream that writes as fast as it can until the connection
// fails, counting what it wrote.
func flood(written *atomic.Int64) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Write(buf)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
}

// TestProxyClientThatNeverReads: an upstream that floods clients that never
// read costs each connection at most its share of held bytes, and all of
// them together at most the proxy's, however long it goes on.
func TestProxyClientThatNeverReads(t *testing.T) {
	noLeaks(t)
	var written atomic.Int64
	up := startServer(t, flood(&written))
	const perConn, total, clients = 128 << 10, 256 << 10, 4
	p, err := latency.ListenOptions("127.0.0.1:0", up.addr(), latency.Options{Limits: latency.Limits{BytesPerConnection: perConn, BytesInFlight: total}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	p.SetDelay(time.Hour, 0) // nothing is ever due: everything read is held

	for range clients {
		dial(t, p.Addr())
	}
	// Every client's upstream side stops being read: either its own share
	// or the proxy's total is full. Each reader may have read one buffer
	// past the cap when it stopped.
	require.Eventually(t, func() bool { return p.Stats().ReadPauses >= clients }, hangGuard, time.Millisecond,
		"every connection must stop being read once the caps are reached")
	held := p.Stats().BytesHeld
	require.LessOrEqual(t, held, int64(total+clients*chunkSize), "the proxy holds at most its total cap plus one buffer per reader")
	require.Greater(t, written.Load(), held, "the upstream wrote more than is held: the rest waits in the kernel, pushed back by TCP")

	// Clients that never read cannot hold Close (the revert behind it)
	// either: its flush is bounded.
	require.NoError(t, p.Close())
}

// TestProxyRefusesItself: an upstream that is the proxy's own listen
// address is refused when the proxy starts (a literal address, including a
// wildcard listen that covers every local address) or, for a hostname, at
// each dial, counted, and with the client closed at once.
func TestProxyRefusesItself(t *testing.T) {
	noLeaks(t)
	port := func() string {
		_, port, err := net.SplitHostPort(freeAddr(t))
		require.NoError(t, err)
		return port
	}
	p1 := port()
	_, err := latency.Listen("127.0.0.1:"+p1, "127.0.0.1:"+p1)
	require.ErrorIs(t, err, latency.ErrLoop, "listen and upstream the same address")
	p2 := port()
	_, err = latency.Listen("0.0.0.0:"+p2, "127.0.0.5:"+p2)
	require.ErrorIs(t, err, latency.ErrLoop, "a wildcard listen covers every loopback address")

	p3 := port()
	p, err := latency.Listen("127.0.0.1:"+p3, "localhost:"+p3)
	require.NoError(t, err, "a hostname cannot be judged before it resolves")
	t.Cleanup(func() { _ = p.Close() })
	c := dial(t, p.Addr())
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err, "the client of a looping proxy is closed")
	require.GreaterOrEqual(t, p.Stats().LoopsRefused, int64(1), "the refused dial to itself is counted")
	require.EqualValues(t, 1, p.Stats().Accepted, "one connection, not a storm of them")
}

// TestSecondTargetOnSameListenIsRefused: two targets with one listen
// address and different upstreams: the second is refused, not silently
// sent to the first one's upstream.
func TestSecondTargetOnSameListenIsRefused(t *testing.T) {
	noLeaks(t)
	a, b := startServer(t, echo), startServer(t, echo)
	listenAddr := freeAddr(t)
	f := latency.New()
	h, err := f.Prepare(t.Context(), sdk.Request{Target: endpoint(listenAddr, a.addr()), Params: json.RawMessage(`{"delay":"1ms"}`)})
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = f.Revert(t.Context(), h) })
	_, err = f.Prepare(t.Context(), sdk.Request{Target: endpoint(listenAddr, b.addr()), Params: json.RawMessage(`{"delay":"1ms"}`)})
	require.ErrorIs(t, err, latency.ErrListenTaken)
	_, err = f.Inject(t.Context(), sdk.Request{Target: endpoint(listenAddr, b.addr()), Params: json.RawMessage(`{"delay":"1ms"}`)})
	require.ErrorIs(t, err, latency.ErrListenTaken)
}

// TestEchoThroughSmallCapsNeverDeadlocks: an upstream that answers as it
// reads (an echo) behind a delay, with a connection cap much smaller than
// what is in flight. If the bytes held one way could stop the other way
// being read, the echo would block writing back, stop reading, and the
// first way's writer would block on it for good. A direction with nothing
// queued may always read one buffer, so both ways always move.
func TestEchoThroughSmallCapsNeverDeadlocks(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p, err := latency.ListenOptions("127.0.0.1:0", up.addr(), latency.Options{Limits: latency.Limits{BytesPerConnection: 64 << 10, BytesInFlight: 128 << 10}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	p.SetDelay(2*time.Millisecond, 0)
	c := dial(t, p.Addr())
	const size = 16 << 20
	back := make(chan int64, 1)
	go func() { n, _ := io.Copy(io.Discard, c); back <- n }()
	buf := make([]byte, 256<<10)
	for sent := 0; sent < size; sent += len(buf) {
		_, err := c.Write(buf)
		require.NoError(t, err, "the proxy keeps reading the client (a deadlock stops it; the connection's deadline ends the test)")
	}
	require.NoError(t, c.CloseWrite())
	select {
	case n := <-back:
		require.Equal(t, int64(size), n, "every byte comes back")
	case <-time.After(hangGuard):
		require.FailNow(t, "the echo never ended: the proxy deadlocked")
	}
}
