package latency_test

import (
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
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
