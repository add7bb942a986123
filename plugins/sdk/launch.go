package sdk

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
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

	done    chan struct{} // closed when the process has exited
	closing chan struct{}
	watched chan struct{}
	once    sync.Once
}

// exitPoll is how often the host looks whether a plugin process is still
// there. go-plugin offers no channel for it; a dead plugin must be noticed
// well within a second, so that the run can say what it left.
const exitPoll = 50 * time.Millisecond

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
		Plugins:          HostPluginMap(),
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
	p := &Plugin{client: client, Fault: fc, done: make(chan struct{}), closing: make(chan struct{}), watched: make(chan struct{})}
	go p.watch()
	return p, nil
}

func (p *Plugin) watch() {
	defer close(p.watched)
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		select {
		case <-p.closing:
			return
		case <-tick.C:
			if p.client.Exited() {
				close(p.done)
				return
			}
		}
	}
}

// Done is closed when the plugin process exits on its own (a crash, a
// kill): the one event a host must notice quickly. It is not closed by
// Close.
func (p *Plugin) Done() <-chan struct{} { return p.done }

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
func (p *Plugin) Close() {
	p.once.Do(func() { close(p.closing) })
	<-p.watched
	p.client.Kill()
}
