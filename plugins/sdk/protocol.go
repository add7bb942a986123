package sdk

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// ErrProtocolMismatch means the plugin was built against another version of
// the plugin protocol than this host speaks: the two refuse each other at
// the handshake, before anything is asked of the plugin.
var ErrProtocolMismatch = errors.New("plugin protocol version mismatch")

// ProtocolError is a handshake refused for the protocol version; it names
// both versions. It wraps ErrProtocolMismatch.
type ProtocolError struct {
	// Plugin is the plugin binary, as started.
	Plugin string
	// PluginVersion is the protocol version the plugin speaks; Host the one
	// this host speaks.
	PluginVersion, HostVersion int
}

func (e *ProtocolError) Error() string {
	advice := "rebuild the plugin against this chaos's plugins/sdk"
	if e.PluginVersion > e.HostVersion {
		advice = "upgrade chaos, or use a build of the plugin for protocol version " + strconv.Itoa(e.HostVersion)
	}
	return fmt.Sprintf("plugin %s speaks plugin protocol version %d, but this chaos speaks version %d: %v; %s",
		e.Plugin, e.PluginVersion, e.HostVersion, ErrProtocolMismatch, advice)
}

func (e *ProtocolError) Unwrap() error { return ErrProtocolMismatch }

// goPluginVersionError is go-plugin's handshake error for another protocol
// version ("incompatible API version with plugin. Plugin version: 2, Client
// versions: [1]"). go-plugin has no typed error for it, so its words are
// matched here, in the one place that turns them into ProtocolError.
var goPluginVersionError = regexp.MustCompile(`(?i)incompatible API version with plugin\. Plugin version: (\d+)`)

// protocolError turns go-plugin's handshake error for a protocol version
// mismatch into a *ProtocolError; nil for any other error.
func protocolError(plugin string, err error) error {
	m := goPluginVersionError.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	v, convErr := strconv.Atoi(m[1])
	if convErr != nil {
		return nil
	}
	return &ProtocolError{Plugin: plugin, PluginVersion: v, HostVersion: ProtocolVersion}
}
