package sdk

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Plugin is a running plugin process, as the host holds it.
type Plugin struct {
	client *plugin.Client
	// Fault talks to the plugin.
	Fault *Client
}

// LaunchOptions configure Launch. The zero value is usable.
type LaunchOptions struct {
	// Log receives the plugin's own log lines and go-plugin's warnings.
	// Nil discards them.
	Log io.Writer
	// StartTimeout bounds the handshake. Zero means 10s.
	StartTimeout time.Duration
	// SecureConfig, when set, pins the plugin binary by checksum.
	SecureConfig *plugin.SecureConfig
}

// Launch starts cmd as a plugin process, completes the handshake over gRPC
// with AutoMTLS, and returns the connected plugin. ctx bounds the start only;
// the process lives until Close.
//
// The plugin is asked to receive SIGTERM when the host dies, so that a
// runner killed with SIGKILL still has its plugins revert what they hold.
func Launch(ctx context.Context, cmd *exec.Cmd, opts LaunchOptions) (*Plugin, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake(),
		Plugins:          PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig:     opts.SecureConfig,
		StartTimeout:     timeout,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "plugin",
			Output: out,
			Level:  hclog.Warn,
		}),
	})
	started := make(chan error, 1)
	var raw any
	go func() {
		rpc, err := client.Client()
		if err == nil {
			raw, err = rpc.Dispense(pluginName)
		}
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			client.Kill()
			return nil, fmt.Errorf("start plugin %s: %w", cmd.Path, err)
		}
	case <-ctx.Done():
		client.Kill()
		<-started
		return nil, fmt.Errorf("start plugin %s: %w", cmd.Path, context.Cause(ctx))
	}
	fc := raw.(*Client)
	fc.exited = client.Exited
	return &Plugin{client: client, Fault: fc}, nil
}

// Exited reports whether the plugin process has ended.
func (p *Plugin) Exited() bool { return p.client.Exited() }

// Pid is the plugin's process id, or 0 when it is not running.
func (p *Plugin) Pid() int {
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Close asks the plugin to stop (it reverts whatever it still holds) and
// waits for it, killing it if it does not stop in time.
func (p *Plugin) Close() { p.client.Kill() }
