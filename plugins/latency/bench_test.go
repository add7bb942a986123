package latency_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

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
// ahead: on a runtime timer alone; on a timer to 1.5 ms short of it plus one
// nanosleep; and on the timer plus what the proxy does (sleepUntil: a
// nanosleep to the spin lead short, then a spin; the lead adapts to how
// late the nanosleeps wake, between 20 and 200 µs). It reports the median and p99
// lateness (overshoot-p50-ns, overshoot-p99-ns) and the CPU the waiting
// thread used per wait (cpu-ns/op, from its thread's CPU clock); ns/op is
// just D.
func BenchmarkReleaseWait(b *testing.B) {
	for _, d := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond} {
		for _, how := range []string{"timer", "timer+nanosleep", "timer+nanosleep+spin"} {
			b.Run(fmt.Sprintf("D=%s/%s", d, how), func(b *testing.B) {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var late []time.Duration
				t := time.NewTimer(time.Hour)
				cpu0 := threadCPU(b)
				for b.Loop() {
					due := time.Now().Add(d)
					wait := time.Until(due)
					if how != "timer" {
						wait -= 1500 * time.Microsecond
					}
					if wait > 0 {
						t.Reset(wait)
						<-t.C
					}
					switch how {
					case "timer+nanosleep":
						if rest := time.Until(due); rest > 0 {
							latency.SleepPrecise(rest)
						}
					case "timer+nanosleep+spin":
						latency.SleepUntil(due)
					}
					late = append(late, time.Since(due))
				}
				cpu := threadCPU(b) - cpu0
				slices.Sort(late)
				b.ReportMetric(float64(late[len(late)/2]), "overshoot-p50-ns")
				b.ReportMetric(float64(late[len(late)*99/100]), "overshoot-p99-ns")
				b.ReportMetric(float64(cpu)/float64(len(late)), "cpu-ns/op")
			})
		}
	}
}

// threadCPU is the CPU time of the calling (locked) thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	require.NoError(b, unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
	return time.Duration(ts.Nano())
}
