package sdk

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestProtocolErrorRephrasesGoPlugin: go-plugin's handshake error for
// another protocol version becomes ErrProtocolMismatch naming both
// versions; any other start error is left alone. (The real handshake is
// tested end to end with a plugin built for version 2: e2e/plugins_test.go.)
func TestProtocolErrorRephrasesGoPlugin(t *testing.T) {
	err := protocolError("/p/chaos-plugin-x", errors.New("incompatible API version with plugin. Plugin version: 2, Client versions: [1]"))
	require.ErrorIs(t, err, ErrProtocolMismatch)
	var pe *ProtocolError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 2, pe.PluginVersion)
	require.Equal(t, ProtocolVersion, pe.HostVersion)
	require.Contains(t, err.Error(), "/p/chaos-plugin-x speaks plugin protocol version 2, but this chaos speaks version 1")
	require.NoError(t, protocolError("x", errors.New("timeout while waiting for plugin to start")), "other start errors stay as they are")
}
