package engine

import (
	"errors"

	"github.com/chaos-run/chaos/plugins/plugindir"
	"github.com/chaos-run/chaos/plugins/sdk"
	"github.com/chaos-run/chaos/reports"
)

// Causes of a run refused because a plugin may not be started: the
// installed binary, the lock file or the plugin directory said no before
// anything was touched. The file is fine; the machine is not as pinned.
const (
	causePluginChecksum       reports.Cause = "plugin-checksum"
	causePluginUnpinned       reports.Cause = "plugin-unpinned"
	causePluginShadowsBuiltin reports.Cause = "plugin-shadows-builtin"
	causePluginProtocol       reports.Cause = "plugin-protocol"
	causePluginDirUnsafe      reports.Cause = "unsafe-plugin-dir"
	causePluginLock           reports.Cause = "plugin-lock"
)

// pluginRefusal says whether a plugin could not be opened because chaos
// refused to start it (plugins/plugindir, or the handshake's protocol
// version), and with which verdict and cause: refused, except for a lock
// file that cannot be read, which is bad input (invalid).
func pluginRefusal(err error) (reports.Verdict, reports.Cause, bool) {
	if errors.Is(err, plugindir.ErrBadLock) {
		return reports.Invalid, causePluginLock, true
	}
	c, ok := pluginRefusalCause(err)
	return reports.Refused, c, ok
}

func pluginRefusalCause(err error) (reports.Cause, bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, plugindir.ErrChecksumMismatch):
		return causePluginChecksum, true
	case errors.Is(err, plugindir.ErrNotPinned):
		return causePluginUnpinned, true
	case errors.Is(err, plugindir.ErrShadowsBuiltin):
		return causePluginShadowsBuiltin, true
	case errors.Is(err, sdk.ErrProtocolMismatch):
		return causePluginProtocol, true
	case errors.Is(err, plugindir.ErrUnsafe):
		return causePluginDirUnsafe, true
	}
	return "", false
}
