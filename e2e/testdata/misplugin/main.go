// Command misplugin is a fault plugin that misbehaves on purpose, for the
// end-to-end tests of installed plugins only. It is the latency plugin with
// one flaw, chosen by the name it is installed under (chaos-plugin-MODE):
//
//   - crash-inject: the process crashes (an unrecovered panic in a
//     goroutine) while injecting, after its proxy was prepared;
//   - hang-revert: reverting a fault never returns, whatever the context
//     says (reverting the preparation still works);
//   - oldproto: it speaks plugin protocol version ProtocolVersion+1.
//
// It lives under testdata so that no build of chaos ever contains it.
package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-plugin"

	"github.com/chaos-run/chaos/plugins/latency"
	"github.com/chaos-run/chaos/plugins/sdk"
)

type misbehaving struct {
	*latency.Fault
	mode string
}

func (m misbehaving) Describe() sdk.Description {
	d := m.Fault.Describe()
	d.Name = m.mode
	d.Summary = "test plugin that misbehaves: " + m.mode
	return d
}

func (m misbehaving) Inject(ctx context.Context, req sdk.Request) (string, error) {
	if m.mode == "crash-inject" {
		// A panic outside any handler: Go cannot recover it, the process
		// dies, as a plugin with a nil map in its fault loop would.
		go func() { panic("misplugin: crash while injecting") }()
		<-ctx.Done()
		return "", ctx.Err()
	}
	return m.Fault.Inject(ctx, req)
}

func (m misbehaving) Revert(ctx context.Context, h string) (bool, error) {
	if m.mode == "hang-revert" && strings.HasPrefix(h, "delay:") {
		select {} // ignores its context: only a signal ends it
	}
	return m.Fault.Revert(ctx, h)
}

// Prepare keeps the latency plugin's ability (embedding alone would, but
// say it: the tests rely on a prepared proxy dying with the process).
func (m misbehaving) Prepare(ctx context.Context, req sdk.Request) (string, error) {
	return m.Fault.Prepare(ctx, req)
}

func main() {
	mode := strings.TrimPrefix(filepath.Base(os.Args[0]), "chaos-plugin-")
	f := misbehaving{Fault: latency.New(), mode: mode}
	if mode != "oldproto" {
		_ = sdk.Serve(context.Background(), f)
		return
	}
	hs := sdk.Handshake()
	hs.ProtocolVersion = sdk.ProtocolVersion + 1
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: hs,
		Plugins:         sdk.NewServer(context.Background(), f).PluginMap(),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
