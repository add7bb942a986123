package latency_test

import (
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/latency"
)

// TestShapeSampleDistributions: the sampled delays have the requested
// distribution (a seeded source, so the check is exact and repeatable).
func TestShapeSampleDistributions(t *testing.T) {
	const d, j = 20 * time.Millisecond, 5 * time.Millisecond
	stats := func(dist latency.Distribution) (lo, hi time.Duration, mean, sd float64) {
		r := rand.New(rand.NewPCG(1, 2))
		sh := latency.Shape{Delay: d, Jitter: j, Distribution: dist}
		const n = 200000
		var sum, sq float64
		lo, hi = time.Duration(math.MaxInt64), 0
		xs := make([]float64, n)
		for i := range n {
			v := sh.Sample(r.Float64, r.NormFloat64)
			lo, hi = min(lo, v), max(hi, v)
			xs[i] = float64(v)
			sum += xs[i]
		}
		mean = sum / n
		for _, x := range xs {
			sq += (x - mean) * (x - mean)
		}
		return lo, hi, mean, math.Sqrt(sq / (n - 1))
	}
	lo, hi, mean, sd := stats(latency.Uniform)
	require.GreaterOrEqual(t, lo, d-j, "uniform: no sample under delay-jitter")
	require.LessOrEqual(t, hi, d+j, "uniform: no sample over delay+jitter")
	require.InDelta(t, float64(d), mean, float64(50*time.Microsecond), "uniform: mean is the delay")
	require.InDelta(t, float64(j)/math.Sqrt(3), sd, float64(50*time.Microsecond), "uniform: deviation is jitter/sqrt(3)")

	lo, hi, mean, sd = stats(latency.Normal)
	require.GreaterOrEqual(t, lo, time.Duration(0), "normal: cut at zero")
	require.LessOrEqual(t, hi, 2*d, "normal: cut at twice the delay, so the mean stays")
	require.InDelta(t, float64(d), mean, float64(50*time.Microsecond), "normal: mean is the delay")
	require.InDelta(t, float64(j), sd, float64(100*time.Microsecond), "normal: deviation is the jitter")

	require.Equal(t, d, latency.Shape{Delay: d}.Sample(rand.Float64, rand.NormFloat64), "no jitter: exactly the delay")
}

// TestProxyFaultInterruptsSplice: a connection that was passing traffic
// through the kernel's splice is delayed as soon as the fault is set, and
// released at once by the revert.
func TestProxyFaultInterruptsSplice(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	c := dial(t, p.Addr())
	buf := make([]byte, 4)
	_, err := c.Write([]byte("pass"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err, "no fault: the echo comes back through the splice")

	p.SetDelay(time.Hour, 0)
	_, err = c.Write([]byte("held"))
	require.NoError(t, err)
	waitHeld(t, p, 4, "the fault reaches a connection that was splicing")
	p.SetDelay(0, 0)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "held", string(buf), "the revert releases it, nothing lost")
	_, err = c.Write([]byte("back"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "back", string(buf), "and the connection goes on")
}

// TestProxyDirection: a delay on one direction holds only that direction.
func TestProxyDirection(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	for _, tc := range []struct {
		dir     latency.Direction
		counter func(latency.Stats) int64 // bytes delivered the delayed way: none
	}{
		{latency.DirToUpstream, func(s latency.Stats) int64 { return s.BytesToUpstream }},
		{latency.DirToClient, func(s latency.Stats) int64 { return s.BytesToClient }},
	} {
		t.Run(string(tc.dir), func(t *testing.T) {
			p := listen(t, up.addr())
			p.SetShape(latency.Shape{Delay: time.Hour, Direction: tc.dir, Share: 1})
			c := dial(t, p.Addr())
			_, err := c.Write([]byte("ping"))
			require.NoError(t, err)
			// to-client: the 4 bytes went up undelayed, came back, and
			// are held on the way down; to-upstream: held on the way up.
			waitHeld(t, p, 4, "the delayed direction holds the 4 bytes")
			require.Zero(t, tc.counter(p.Stats()), "nothing was delivered the delayed way")
			p.SetDelay(0, 0)
			buf := make([]byte, 4)
			_, err = io.ReadFull(c, buf)
			require.NoError(t, err)
		})
	}
}

// TestProxyShare: a share of connections is delayed, drawn per connection:
// with half, of 40 connections some are held and some are not (the chance
// of all or none is 2^-39).
func TestProxyShare(t *testing.T) {
	noLeaks(t)
	up := startServer(t, echo)
	p := listen(t, up.addr())
	p.SetShape(latency.Shape{Delay: time.Hour, Direction: latency.DirBoth, Share: 0.5})
	held, passed := 0, 0
	for range 40 {
		c := dial(t, p.Addr())
		_, err := c.Write([]byte("ping"))
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err == nil {
			passed++
		} else {
			held++
		}
	}
	require.Positive(t, held, "some connections are delayed")
	require.Positive(t, passed, "and some are not")
	p.SetDelay(0, 0)
}

// A chunk whose normal sample is past delay+jitter (up to the cut at twice
// the delay) is held to its due time: the cap that lets a lower setting
// release chunks early is the longest the setting can draw, not
// delay+jitter.
func TestNormalSampleBeyondDelayPlusJitterIsHeld(t *testing.T) {
	p, err := latency.Listen("127.0.0.1:0", "127.0.0.1:1")
	require.NoError(t, err)
	defer p.Close()
	sh := latency.Shape{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Distribution: latency.Normal, Direction: latency.DirBoth, Share: 1}
	p.SetShape(sh)
	require.Equal(t, 40*time.Millisecond, sh.Longest())
	read := time.Now()
	due := read.Add(35 * time.Millisecond) // a draw 3 deviations out
	require.True(t, latency.WaitDue(p, read, due), "held to its own due time")
	require.False(t, time.Now().Before(due), "not released at delay+jitter (25 ms) but at its due time")
}
