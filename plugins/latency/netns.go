package latency

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/vishvananda/netns"
)

// netnsDir is where `ip netns add` pins named network namespaces.
const netnsDir = "/run/netns"

// ErrNoNamespace means a named network namespace does not exist.
var ErrNoNamespace = errors.New("no such network namespace")

// inNS runs fn on an OS thread inside the named network namespace; "" is
// the plugin's own. Sockets fn creates stay in that namespace for good, so
// a listener or a connection made here serves that namespace's traffic
// from any goroutine afterwards. fn runs on a goroutine of its own, locked
// to its thread: if the thread cannot be moved back, the goroutine ends
// locked and the runtime retires the thread rather than reuse it in the
// wrong namespace.
func inNS(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
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
		target, err := openNS(name)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Left locked on purpose: the thread dies with this goroutine.
			done <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", name, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// openNS opens a named network namespace, or the plugin's own for "".
func openNS(name string) (netns.NsHandle, error) {
	if name == "" {
		return netns.Get()
	}
	if err := checkNSName(name); err != nil {
		return netns.None(), err
	}
	h, err := netns.GetFromPath(filepath.Join(netnsDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return netns.None(), fmt.Errorf("%w: %s (no %s; `ip netns list` shows what there is)", ErrNoNamespace, name, filepath.Join(netnsDir, name))
	}
	if err != nil {
		return netns.None(), fmt.Errorf("open network namespace %s: %w", name, err)
	}
	return h, nil
}

// checkNSName refuses a name that is not a plain file name under /run/netns.
func checkNSName(name string) error {
	if name == "." || name == ".." || filepath.Base(name) != name {
		return fmt.Errorf("%w: %q is not a namespace name", ErrNoNamespace, name)
	}
	return nil
}

// namespaces lists the plugin's own namespace ("") and every named one, for
// a revert by id that does not know where its fault was.
func namespaces() []string {
	names := []string{""}
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return names
	}
	var named []string
	for _, e := range entries {
		named = append(named, e.Name())
	}
	sort.Strings(named)
	return append(names, named...)
}

// nsLabel names a namespace for people.
func nsLabel(name string) string {
	if name == "" {
		return "the host"
	}
	return "network namespace " + name
}
