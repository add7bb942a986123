package latency

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// timestampCmsg is the control data of a recvmsg with SO_TIMESTAMPNS on.
func timestampCmsg(at time.Time) []byte {
	b := make([]byte, unix.CmsgSpace(16))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(16))
	data := b[unix.CmsgLen(0):]
	binary.NativeEndian.PutUint64(data[0:8], uint64(at.Unix()))
	binary.NativeEndian.PutUint64(data[8:16], uint64(at.Nanosecond()))
	return b
}

// The kernel's stamp moves the arrival back from the read time, on the
// read's monotonic clock; a stamp in the future, one too far back (a
// stepped clock, bytes held back by the proxy's limits) or none leaves the
// read time.
func TestArrival(t *testing.T) {
	now := time.Now()
	got := arrival(now, timestampCmsg(now.Add(-300*time.Microsecond)))
	require.Equal(t, now.Add(-300*time.Microsecond), got)
	require.Equal(t, 300*time.Microsecond, now.Sub(got), "the arrival keeps the read's monotonic reading")

	require.Equal(t, now, arrival(now, timestampCmsg(now.Add(time.Millisecond))), "a stamp after the read is not trusted")
	require.Equal(t, now, arrival(now, timestampCmsg(now.Add(-maxArrivalLag-time.Microsecond))), "a stamp too far back is not trusted")
	require.Equal(t, now, arrival(now, nil), "no stamp: the read time")
	require.Equal(t, now, arrival(now, []byte{1, 2, 3}), "control data that does not parse: the read time")
}

// On a real loopback connection the stamped read gets the kernel's stamp:
// bytes known to be there before a time are stamped no later than it. The
// kernel turns receive stamping on in deferred work when the first socket
// asks for it, so the first bytes may go unstamped (and are then stamped
// with the read time, which is what the proxy did before): the test tries a
// few messages.
func TestStampedReadOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.Accept()
	require.NoError(t, err)
	defer s.Close()
	r := newStampedReader(s.(*net.TCPConn))
	require.NotNil(t, r, "a TCP socket takes SO_TIMESTAMPNS")
	raw, err := s.(*net.TCPConn).SyscallConn()
	require.NoError(t, err)

	buf := make([]byte, 16)
	stamped := false
	for range 100 {
		_, err = c.Write([]byte("hello"))
		require.NoError(t, err)
		// Wait, in the kernel, until the bytes are there; they arrived
		// before there.
		peek := make([]byte, 1)
		require.NoError(t, raw.Read(func(fd uintptr) bool {
			n, _, err := unix.Recvfrom(int(fd), peek, unix.MSG_PEEK)
			return err != unix.EAGAIN && n > 0
		}))
		there := time.Now()
		for time.Since(there) < time.Millisecond { // the read comes visibly later
		}
		n, arrived, err := r.read(buf)
		require.NoError(t, err)
		require.Equal(t, "hello", string(buf[:n]))
		if !arrived.After(there) {
			stamped = true
			break
		}
	}
	require.True(t, stamped, "the bytes are stamped at their arrival, not at the read")

	require.NoError(t, c.Close())
	n, _, err := r.read(buf)
	require.NoError(t, err)
	require.Zero(t, n, "the end of the stream is a read of nothing")
}
