package latency

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The release time of a chunk is its arrival plus its delay. "Arrival" is
// when the kernel received the bytes (SO_TIMESTAMPNS, read with recvmsg),
// not when the reader goroutine got round to reading them: a goroutine
// parked in the poller wakes tens to hundreds of microseconds after its
// data lands on a virtual machine, more the longer it was idle, and that
// lateness would otherwise be added to every delay, in each direction.
// Bytes the kernel did not stamp (it turns stamping on in deferred work when
// the first socket asks, so the first bytes may miss it) are stamped with
// the read time, as before.

// maxArrivalLag bounds how far before the read the kernel's stamp may put
// an arrival. A stamp further back is not trusted and the read time is
// used: the wall clock may have been stepped between the two readings (the
// stamp is on the wall clock), or the bytes waited in the socket because
// the proxy held all it may (then the old "delay after the read" holds).
const maxArrivalLag = 5 * time.Millisecond

// stampedReader reads one side with the kernel's receive time of the bytes
// read. A side whose socket refuses the option is read plainly, stamped
// with the read time.
type stampedReader struct {
	raw syscall.RawConn
	oob []byte
}

// newStampedReader turns on receive timestamps for c. It returns nil when
// the socket does not take them.
func newStampedReader(c *net.TCPConn) *stampedReader {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	return &stampedReader{raw: raw, oob: make([]byte, unix.CmsgSpace(16))}
}

// read reads into buf, waiting in the poller (read deadlines apply), and
// returns what it read and when it arrived. n == 0 with no error is the end
// of the stream (io.EOF).
func (r *stampedReader) read(buf []byte) (n int, arrived time.Time, err error) {
	var oobn int
	var rerr error
	err = r.raw.Read(func(fd uintptr) bool {
		for {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, r.oob, 0)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	now := time.Now()
	if err == nil && rerr != nil {
		err = &net.OpError{Op: "read", Net: "tcp", Err: rerr}
	}
	if err != nil || n <= 0 {
		return max(n, 0), now, err
	}
	return n, arrival(now, r.oob[:oobn]), nil
}

// arrival is the kernel's receive time in a recvmsg's control data, on the
// monotonic clock of now (the read time), or now when there is none or it
// is not to be trusted (see maxArrivalLag).
func arrival(now time.Time, oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return now
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS || len(m.Data) < 16 {
			continue
		}
		sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
		nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
		// now.Round(0) has no monotonic reading, so the two wall
		// readings are compared; the lag is then taken off now, which
		// keeps now's monotonic reading.
		lag := now.Round(0).Sub(time.Unix(sec, nsec))
		if lag < 0 || lag > maxArrivalLag {
			return now
		}
		return now.Add(-lag)
	}
	return now
}
