package latency

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// What a fault did. A latency fault that delayed nothing proves nothing: an
// experiment whose traffic all went over connections the fault never saw
// (a warm pool under intercept mode, a client that was not pointed at the
// proxy) passes without having been tested. So after a revert the plugin
// says, in the Status the engine asks for and puts in the report, how much
// traffic the fault held back, and for intercept how many connections it
// could not take because they were open before its rules.

// effect is what one fault did to the traffic: its proxy's counters between
// the inject and the revert, and, for intercept, the connections its rules
// did not take.
type effect struct {
	delayed, delayedBytes int64 // chunks (and their bytes) held to their due time
	late                  int64 // of them, released more than LateAfter past it
	accepted              int64 // connections the proxy took while the fault was live
	open                  openConns
}

// openConns are, for intercept, the connections to dest established
// before the rules went in: they keep their direct path. Proxy mode has
// none.
type openConns struct {
	dest string
	n    int
	more bool  // more than n (maxOpen) were open
	err  error // not counted: why
}

// effectOf is the effect between two readings of one proxy's Stats.
func effectOf(before, after Stats) effect {
	return effect{
		delayed:      after.Delayed - before.Delayed,
		delayedBytes: after.DelayedBytes - before.DelayedBytes,
		late:         after.Late - before.Late,
		accepted:     after.Accepted - before.Accepted,
	}
}

// String says the effect in one line for the report's fault table.
func (e effect) String() string {
	var b strings.Builder
	if e.delayed == 0 {
		b.WriteString("delayed nothing: no bytes crossed the fault while it was live")
	} else {
		fmt.Fprintf(&b, "delayed %s in %s", bytesText(e.delayedBytes), count(e.delayed, "chunk"))
		if e.late > 0 {
			fmt.Fprintf(&b, " (%d released more than %s past due)", e.late, LateAfter)
		}
	}
	fmt.Fprintf(&b, "; %s opened during the fault", count(e.accepted, "connection"))
	switch o := e.open; {
	case o.err != nil:
		fmt.Fprintf(&b, "; connections to %s already open were not counted (%v): any there kept their direct path, undelayed", o.dest, o.err)
	case o.n > 0:
		atLeast := ""
		if o.more {
			atLeast = "at least "
		}
		fmt.Fprintf(&b, "; %s%s to %s %s already open and kept %s direct path, undelayed (intercept takes new connections only)",
			atLeast, count(int64(o.n), "connection"), o.dest, plural(o.n, "was", "were"), plural(o.n, "its", "their"))
	}
	return b.String()
}

func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// bytesText is n bytes in the unit that reads best.
func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return count(n, "byte")
}

// maxOpen bounds how many open connections countOpen tells apart; past it,
// it says "at least".
const maxOpen = 100_000

// connKey is one connection to the destination: its client's address and
// port (the destination is the same for all).
type connKey = netip.AddrPort

// countOpen counts the established TCP connections to dest (from source,
// when valid) in network namespace ns, before an intercept's rules go in:
// the ones the rules, which take new connections only, leave on their
// direct path. It looks where they can be seen: the namespace's sockets
// (a client in the namespace, whose remote end is dest; a server in it,
// whose local end is dest) and its connection tracking table (traffic
// routed through the namespace, when anything tracked it). One connection
// seen from both ends counts once. More than maxOpen is reported as
// maxOpen with more set.
func countOpen(ns string, dest netip.AddrPort, source netip.Addr) openConns {
	o := openConns{dest: dest.String()}
	dest = netip.AddrPortFrom(dest.Addr().Unmap(), dest.Port())
	seen := map[connKey]struct{}{}
	add := func(client netip.AddrPort) bool {
		if source.IsValid() && client.Addr().Unmap() != source.Unmap() {
			return true
		}
		if len(seen) >= maxOpen {
			o.more = true
			return false
		}
		seen[netip.AddrPortFrom(client.Addr().Unmap(), client.Port())] = struct{}{}
		return true
	}
	deadline := time.Now().Add(countWait)
	o.err = inNS(ns, func() error {
		for _, file := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
			if err := scanSockets(file, dest, deadline, add); err != nil {
				return err
			}
		}
		return scanTracked(dest, add)
	})
	o.n = len(seen)
	return o
}

// countWait bounds the reading of the socket tables: on a machine with
// very many sockets /proc/net/tcp is slow to read, and the fault waits for
// the count.
const countWait = time.Second

// errCountTimeout says the socket tables took longer than countWait.
var errCountTimeout = fmt.Errorf("socket tables took longer than %s to read", countWait)

// tcpEstablished is TCP_ESTABLISHED in /proc/net/tcp's st column.
const tcpEstablished = "01"

// scanSockets reads a /proc/net/tcp file line by line and calls add with
// the client end of each established connection to dest, until add says
// stop or the deadline passes (an error). A file that is not there (no
// IPv6) holds nothing.
func scanSockets(file string, dest netip.AddrPort, deadline time.Time, add func(netip.AddrPort) bool) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for line := 0; sc.Scan(); line++ {
		if line%1024 == 1023 && time.Now().After(deadline) {
			return errCountTimeout
		}
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != tcpEstablished {
			continue
		}
		local, err1 := procAddr(fields[1])
		remote, err2 := procAddr(fields[2])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%s: unreadable line %q", file, sc.Text())
		}
		client := local
		switch dest {
		case remote: // a client here
		case local: // a server here
			client = remote
		default:
			continue
		}
		if !add(client) {
			return nil
		}
	}
	return sc.Err()
}

// procAddr parses an address of /proc/net/tcp{,6}: the address's 32-bit
// words in hex, each in the machine's byte order, a colon, the port in
// hex. IPv4-mapped IPv6 addresses come out as IPv4.
func procAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw := make([]byte, len(hexAddr)/2)
	for i := 0; i < len(hexAddr); i += 8 {
		w, err := strconv.ParseUint(hexAddr[i:i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, err
		}
		binary.NativeEndian.PutUint32(raw[i/2:], uint32(w))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// scanTracked calls add with the client end of each established TCP
// connection to dest in the calling thread's connection tracking table
// (read over netlink, no conntrack binary). A namespace where nothing
// tracks connections, or a kernel without connection tracking, holds none;
// a table larger than maxTracked is not read.
func scanTracked(dest netip.AddrPort, add func(netip.AddrPort) bool) error {
	tracked, err := trackedCount()
	if err != nil || tracked == 0 {
		return nil // not tracking here
	}
	if tracked > maxTracked {
		return fmt.Errorf("%w: %d entries, more than %d", errTooManyTracked, tracked, maxTracked)
	}
	family := netlink.InetFamily(unix.AF_INET)
	if dest.Addr().Is6() {
		family = unix.AF_INET6
	}
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.SetSocketTimeout(2 * time.Second); err != nil {
		return err
	}
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, family)
	if err != nil {
		return fmt.Errorf("read connection tracking: %w", err)
	}
	for _, f := range flows {
		if tcp, ok := f.ProtoInfo.(*netlink.ProtoInfoTCP); !ok || tcp.State != nl.TCP_CONNTRACK_ESTABLISHED {
			continue
		}
		dst, _ := netip.AddrFromSlice(f.Forward.DstIP)
		src, _ := netip.AddrFromSlice(f.Forward.SrcIP)
		if netip.AddrPortFrom(dst.Unmap(), f.Forward.DstPort) != dest {
			continue
		}
		if !add(netip.AddrPortFrom(src, f.Forward.SrcPort)) {
			return nil
		}
	}
	return nil
}

// maxTracked bounds the connection tracking table scanTracked reads (a
// dump of a million entries would take the plugin's memory and the
// inject's time).
const maxTracked = 100_000

// errTooManyTracked says the table was too large to read.
var errTooManyTracked = errors.New("connection tracking table too large to read")

// trackedCount is the number of entries in the calling thread's network
// namespace's connection tracking table.
func trackedCount() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
