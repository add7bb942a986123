package latency_test

import (
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chaos-run/chaos/plugins/latency"
)

// BenchmarkRoundTrip measures one small request-response over loopback,
// directly to an echo server (the anchor) and through the proxy with no
// delay set: what it costs to have the proxy in the path before and after a
// fault.
func BenchmarkRoundTrip(b *testing.B) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	run := func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		require.NoError(b, err)
		defer c.Close()
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, up.Addr().String()) })
	b.Run("proxy", func(b *testing.B) {
		p := listen(b, up.Addr().String())
		run(b, p.Addr())
	})
}

// BenchmarkReleaseWait measures how late a writer wakes for a due time D
// ahead: on a runtime timer alone, and on a timer to 1.5 ms short of it plus
// one nanosleep (what the proxy does). It reports the median and p99
// lateness (overshoot-p50-ns, overshoot-p99-ns); ns/op is just D.
func BenchmarkReleaseWait(b *testing.B) {
	for _, d := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond} {
		for _, precise := range []bool{false, true} {
			name := fmt.Sprintf("D=%s/timer", d)
			if precise {
				name += "+nanosleep"
			}
			b.Run(name, func(b *testing.B) {
				var late []time.Duration
				t := time.NewTimer(time.Hour)
				for b.Loop() {
					due := time.Now().Add(d)
					wait := time.Until(due)
					if precise {
						wait -= 1500 * time.Microsecond
					}
					if wait > 0 {
						t.Reset(wait)
						<-t.C
					}
					if rest := time.Until(due); precise && rest > 0 {
						latency.SleepPrecise(rest)
					}
					late = append(late, time.Since(due))
				}
				slices.Sort(late)
				b.ReportMetric(float64(late[len(late)/2]), "overshoot-p50-ns")
				b.ReportMetric(float64(late[len(late)*99/100]), "overshoot-p99-ns")
			})
		}
	}
}
