package latency

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chaos-run/chaos/plugins/sdk"
)

// Handles of intercept and netem faults carry what a fresh process needs to
// undo them: the table's name and namespace, the qdisc's major number,
// interface and namespace.
const (
	noneHandle      = "none:"      // + mode: a preparation that changed nothing
	interceptHandle = "intercept:" // + table + ":" + namespace
	netemHandle     = "netem:"     // + major (hex) + ":" + interface + ":" + namespace
)

// intercept is an intercept fault this process holds: its table, the
// proxy the table redirects into, and what its rules could not take (the
// connections already open, counted as the rules went in).
type intercept struct {
	ns, table string
	proxy     *Proxy
	open      openConns
}

// injectionID is the id the kernel state is named from: the ledger entry's,
// or, for a request without one (a test), one of this process's own.
func (f *Fault) injectionID(req sdk.Request) string {
	if req.ID != "" {
		return req.ID
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("anonymous/%d/%d/%d", os.Getpid(), time.Now().UnixNano(), f.seq)
}

// injectIntercept stands a proxy in the namespace, then writes the table
// that redirects into it: traffic is delayed when it returns.
func (f *Fault) injectIntercept(ctx context.Context, req sdk.Request, p Params) (string, error) {
	id := f.injectionID(req)
	table, mark := tableName(id), markOf(id)
	ln, err := listenIn(p.Namespace, p.Destination)
	if err != nil {
		if errors.Is(err, ErrNoNamespace) {
			return "", fmt.Errorf("%w: %w", sdk.ErrRefused, err)
		}
		return "", fmt.Errorf("listen for intercepted traffic in %s: %w", nsLabel(p.Namespace), err)
	}
	proxy := serveOn(ln, "", Options{Limits: p.Limits, Guard: sdk.Guard(ctx), Route: nsRoute{ns: p.Namespace, mark: mark}})
	proxy.SetShape(p.Shape)
	// Counted just before the rules go in: what is open now keeps its
	// path, and the proxy has no connection of its own to count yet.
	open := countOpen(p.Namespace, p.Destination, p.Source)
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	if err := addTable(p.Namespace, table, interceptRule{dest: p.Destination, source: p.Source, mark: mark, port: port}); err != nil {
		_ = proxy.Close()
		// A table half written is none: Flush is one transaction. Delete
		// it anyway in case the kernel said no after all.
		_, _ = delTable(p.Namespace, table)
		if errors.Is(err, syscall.EPERM) {
			return "", fmt.Errorf("%w: %w (intercept needs CAP_NET_ADMIN: run chaos as root)", sdk.ErrRefused, err)
		}
		return "", err
	}
	handle := interceptHandle + table + ":" + p.Namespace
	f.mu.Lock()
	f.intercepts[handle] = &intercept{ns: p.Namespace, table: table, proxy: proxy, open: open}
	f.mu.Unlock()
	return handle, nil
}

func parseInterceptHandle(h string) (table, ns string, ok bool) {
	rest, ok := strings.CutPrefix(h, interceptHandle)
	if !ok {
		return "", "", false
	}
	table, ns, ok = strings.Cut(rest, ":")
	return table, ns, ok && strings.HasPrefix(table, tablePrefix)
}

// revertIntercept deletes the table first (new connections go straight to
// the destination), then drains the proxy: connections made through the
// rules keep flowing, undelayed, until they close.
func (f *Fault) revertIntercept(handle string) (bool, error) {
	table, ns, ok := parseInterceptHandle(handle)
	if !ok {
		return false, fmt.Errorf("%w: %s", sdk.ErrUnknownHandle, handle)
	}
	found, err := delTable(ns, table)
	if err != nil {
		return found, err
	}
	f.mu.Lock()
	ic, held := f.intercepts[handle]
	delete(f.intercepts, handle)
	if held {
		e := effectOf(Stats{}, ic.proxy.Stats())
		e.open = ic.open
		f.remember(handle, e)
	}
	f.mu.Unlock()
	if held {
		ic.proxy.Drain()
	}
	return found, nil
}

func (f *Fault) statusIntercept(handle string) (sdk.Status, error) {
	table, ns, ok := parseInterceptHandle(handle)
	if !ok {
		return sdk.Status{}, fmt.Errorf("%w: %s", sdk.ErrUnknownHandle, handle)
	}
	f.mu.Lock()
	ic, held := f.intercepts[handle]
	f.mu.Unlock()
	there, err := hasTable(ns, table)
	if err != nil {
		return sdk.Status{}, err
	}
	if !there {
		f.mu.Lock()
		defer f.mu.Unlock()
		return sdk.Status{Detail: f.said[handle]}, nil
	}
	detail := fmt.Sprintf("nftables table %s in %s", table, nsLabel(ns))
	if held {
		d, j := ic.proxy.Delay()
		detail += fmt.Sprintf(" redirects into a proxy on %s delaying %s jitter %s", ic.proxy.Addr(), d, j)
	} else {
		detail += " redirects into a proxy this process does not hold"
	}
	return sdk.Status{Active: true, Detail: detail}, nil
}

// injectNetem adds the qdisc; packets leaving the interface are delayed
// when it returns.
func (f *Fault) injectNetem(req sdk.Request, p Params) (string, error) {
	if err := f.netemSupport(); errors.Is(err, ErrNoNetem) {
		return "", fmt.Errorf("%w: %w; use mode: intercept", sdk.ErrRefused, err)
	}
	major := netemMajor(f.injectionID(req))
	err := addNetem(p.Namespace, p.Interface, major, netemAttrs{
		delayUS:     uint32(p.Delay / time.Microsecond),
		jitterUS:    uint32(p.Jitter / time.Microsecond),
		correlation: float32(p.Correlation),
		loss:        float32(p.Loss),
	})
	if err != nil {
		if errors.Is(err, ErrNoNetem) || errors.Is(err, ErrNoNamespace) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EEXIST) {
			return "", fmt.Errorf("%w: %w", sdk.ErrRefused, err)
		}
		return "", err
	}
	return fmt.Sprintf("%s%x:%s:%s", netemHandle, major, p.Interface, p.Namespace), nil
}

func parseNetemHandle(h string) (major uint16, iface, ns string, ok bool) {
	rest, ok := strings.CutPrefix(h, netemHandle)
	if !ok {
		return 0, "", "", false
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return 0, "", "", false
	}
	m, err := strconv.ParseUint(parts[0], 16, 16)
	if err != nil {
		return 0, "", "", false
	}
	return uint16(m), parts[1], parts[2], true
}

func revertNetem(handle string) (bool, error) {
	major, iface, ns, ok := parseNetemHandle(handle)
	if !ok {
		return false, fmt.Errorf("%w: %s", sdk.ErrUnknownHandle, handle)
	}
	return delNetem(ns, iface, major)
}

func statusNetem(handle string) (sdk.Status, error) {
	major, iface, ns, ok := parseNetemHandle(handle)
	if !ok {
		return sdk.Status{}, fmt.Errorf("%w: %s", sdk.ErrUnknownHandle, handle)
	}
	found, err := hasNetem(ns, iface, major)
	if err != nil || !found {
		return sdk.Status{}, err
	}
	return sdk.Status{Active: true, Detail: fmt.Sprintf("netem qdisc %x: on %s in %s", major, iface, nsLabel(ns))}, nil
}

// RevertByID implements sdk.RevertByID: intercept tables and netem qdiscs
// outlive the process, and both are named from the id, so a fresh process
// finds them in the host's namespace and every named one. A proxy-mode
// fault lived in the old process and is gone with it: nothing to find.
func (f *Fault) RevertByID(ctx context.Context, id string) (bool, error) {
	table, major := tableName(id), netemMajor(id)
	// This process's own intercept for the id, if it holds one, is drained
	// as a revert by handle would.
	f.mu.Lock()
	var mine []string
	for h, ic := range f.intercepts {
		if ic.table == table {
			mine = append(mine, h)
		}
	}
	f.mu.Unlock()
	found := false
	var errs []error
	for _, h := range mine {
		was, err := f.revertIntercept(h)
		found = found || was
		errs = append(errs, err)
	}
	for _, ns := range namespaces() {
		if err := ctx.Err(); err != nil {
			return found, err
		}
		was, err := delTable(ns, table)
		found = found || was
		errs = append(errs, err)
		if f.netemSupport() == nil {
			was, err = delNetem(ns, "", major)
			found = found || was
			errs = append(errs, err)
		}
	}
	return found, errors.Join(errs...)
}
