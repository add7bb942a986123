package latency

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEffectSaysWhatTheFaultDid(t *testing.T) {
	for _, c := range []struct {
		e    effect
		want string
	}{
		{effect{}, "delayed nothing: no bytes crossed the fault while it was live; 0 connections opened during the fault"},
		{effect{delayed: 3, delayedBytes: 3 << 20, late: 1, accepted: 1},
			"delayed 3.0 MiB in 3 chunks (1 released more than 100µs past due); 1 connection opened during the fault"},
		{effect{open: openConns{n: 4, dest: "10.0.0.2:80"}},
			"delayed nothing: no bytes crossed the fault while it was live; 0 connections opened during the fault; 4 connections to 10.0.0.2:80 were already open and kept their direct path, undelayed (intercept takes new connections only)"},
		{effect{delayed: 1, delayedBytes: 1, accepted: 2, open: openConns{n: maxOpen, more: true, dest: "[fd00::1]:443"}},
			"delayed 1 byte in 1 chunk; 2 connections opened during the fault; at least 100000 connections to [fd00::1]:443 were already open and kept their direct path, undelayed (intercept takes new connections only)"},
		{effect{delayed: 2, delayedBytes: 2048, accepted: 1, open: openConns{err: errors.New("boom"), dest: "10.0.0.2:80"}},
			"delayed 2.0 KiB in 2 chunks; 1 connection opened during the fault; connections to 10.0.0.2:80 already open were not counted (boom): any there kept their direct path, undelayed"},
	} {
		require.Equal(t, c.want, c.e.String())
	}
}

func TestProcAddr(t *testing.T) {
	// As the kernel prints them on a little-endian machine.
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the samples are a little-endian machine's /proc/net/tcp")
	}
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"00000000000000000000000001000000:0050": "[::1]:80",
		"0000000000000000FFFF00000100007F:01BB": "127.0.0.1:443", // IPv4-mapped
		"000080FE00000000FF000000020000FE:0016": "[fe80::ff:fe00:2]:22",
	} {
		got, err := procAddr(in)
		require.NoError(t, err, in)
		require.Equal(t, netip.MustParseAddrPort(want), got, in)
	}
	for _, bad := range []string{"", "0100007F", "0100007F:", "0100007:1F90", "0100007G:1F90", "0100007F:1FFFF"} {
		_, err := procAddr(bad)
		require.Error(t, err, bad)
	}
}
