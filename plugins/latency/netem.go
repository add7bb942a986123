package latency

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Netem mode: a netem qdisc at the root of an interface, through netlink.
// The qdisc lives in the kernel; its handle's major number is a function of
// the injection id (netemMajor), so a fresh process finds it on any
// interface of any namespace and deletes it.

// ErrNoNetem means this kernel cannot add a netem qdisc.
var ErrNoNetem = errors.New("this kernel has no netem")

// netemMajor is the qdisc handle major number of the injection id, in
// 0xc000-0xfffe: clear of the small numbers people and tools pick by hand,
// and of 0xffff (ingress).
func netemMajor(id string) uint16 {
	sum := sha256.Sum256([]byte("netem:" + id))
	return 0xc000 + binary.BigEndian.Uint16(sum[:2])%0x3fff
}

// netemSupport says whether the kernel can add a netem qdisc. It tries for
// real: in a throwaway network namespace (created and gone with this call,
// so nothing is touched) it adds a netem qdisc to lo. Without the right to
// create a namespace, the sch_netem module in /sys/module is the evidence.
// err is nil when netem works, wraps ErrNoNetem when it does not, and says
// why it could not tell otherwise.
func netemSupport() error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("read own network namespace: %w", err)
			return
		}
		defer orig.Close()
		// netns.New moves this thread into a new namespace.
		tmp, err := netns.New()
		if err != nil {
			_ = netns.Set(orig)
			runtime.UnlockOSThread()
			done <- netemModuleEvidence(err)
			return
		}
		res := tryNetem()
		_ = tmp.Close()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- res
	}()
	return <-done
}

// tryNetem adds and deletes a netem qdisc on lo of the current thread's
// (throwaway) namespace.
func tryNetem() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in a throwaway namespace: %w", err)
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: lo.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, netlink.NetemQdiscAttrs{Latency: 1000})
	if err := netlink.QdiscAdd(q); err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EOPNOTSUPP) {
			return fmt.Errorf("%w: adding a netem qdisc in a throwaway network namespace failed (%v): the kernel was built without CONFIG_NET_SCH_NETEM and has no sch_netem module", ErrNoNetem, err)
		}
		return fmt.Errorf("add a netem qdisc in a throwaway network namespace: %w", err)
	}
	_ = netlink.QdiscDel(q)
	return nil
}

// netemModuleEvidence decides from /sys/module when no namespace could be
// made to try in.
func netemModuleEvidence(why error) error {
	if _, err := os.Stat("/sys/module/sch_netem"); err == nil {
		return nil
	}
	return fmt.Errorf("cannot tell whether the kernel has netem: no throwaway network namespace to try in (%v), and no sch_netem module loaded", why)
}

// netemAttrs are the qdisc's settings.
type netemAttrs struct {
	delayUS, jitterUS uint32
	correlation, loss float32
}

// addNetem adds the injection's netem qdisc at the root of iface in ns.
func addNetem(ns, iface string, major uint16, a netemAttrs) error {
	h, closeNS, err := netlinkIn(ns)
	if err != nil {
		return err
	}
	defer closeNS()
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("interface %s in %s: %w", iface, nsLabel(ns), err)
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(major, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{Latency: a.delayUS, Jitter: a.jitterUS, DelayCorr: a.correlation, Loss: a.loss})
	if err := h.QdiscAdd(q); err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EOPNOTSUPP) {
			return fmt.Errorf("%w: add netem qdisc on %s in %s: %w", ErrNoNetem, iface, nsLabel(ns), err)
		}
		return fmt.Errorf("add netem qdisc on %s in %s: %w", iface, nsLabel(ns), err)
	}
	return nil
}

// delNetem deletes every root netem qdisc with the major number in ns
// (on iface, or on any interface for ""); found says whether there was one.
func delNetem(ns, iface string, major uint16) (found bool, err error) {
	h, closeNS, err := netlinkIn(ns)
	if errors.Is(err, ErrNoNamespace) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closeNS()
	var links []netlink.Link
	if iface != "" {
		l, err := h.LinkByName(iface)
		if err != nil {
			return false, nil // the interface is gone, and its qdisc with it
		}
		links = []netlink.Link{l}
	} else if links, err = h.LinkList(); err != nil {
		return false, fmt.Errorf("list interfaces in %s: %w", nsLabel(ns), err)
	}
	for _, l := range links {
		qs, err := h.QdiscList(l)
		if err != nil {
			return found, fmt.Errorf("list qdiscs of %s in %s: %w", l.Attrs().Name, nsLabel(ns), err)
		}
		for _, q := range qs {
			if q.Type() != "netem" || q.Attrs().Parent != netlink.HANDLE_ROOT {
				continue
			}
			if maj, _ := netlink.MajorMinor(q.Attrs().Handle); maj != major {
				continue
			}
			if err := h.QdiscDel(q); err != nil && !errors.Is(err, syscall.ENOENT) {
				return found, fmt.Errorf("delete netem qdisc on %s in %s: %w", l.Attrs().Name, nsLabel(ns), err)
			}
			found = true
		}
	}
	return found, nil
}

// netlinkIn is a netlink handle in namespace ns.
func netlinkIn(ns string) (*netlink.Handle, func(), error) {
	nh, err := openNS(ns)
	if err != nil {
		return nil, nil, err
	}
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		_ = nh.Close()
		return nil, nil, fmt.Errorf("open netlink in %s: %w", nsLabel(ns), err)
	}
	return h, func() { h.Close(); _ = nh.Close() }, nil
}

// hasNetem reports whether iface in ns has the root netem qdisc major.
func hasNetem(ns, iface string, major uint16) (bool, error) {
	h, closeNS, err := netlinkIn(ns)
	if err != nil {
		return false, err
	}
	defer closeNS()
	l, err := h.LinkByName(iface)
	if err != nil {
		return false, nil
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		return false, fmt.Errorf("list qdiscs of %s in %s: %w", iface, nsLabel(ns), err)
	}
	for _, q := range qs {
		if maj, _ := netlink.MajorMinor(q.Attrs().Handle); q.Type() == "netem" && maj == major {
			return true, nil
		}
	}
	return false, nil
}
