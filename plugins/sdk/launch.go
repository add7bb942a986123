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
	cmd    *exec.Cmd
	// Fault talks to the plugin.
	Fault *Client
	// closeGrace and killGrace bound Close: see LaunchOptions.
	closeGrace, killGrace time.Duration

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
	// CloseGrace is how long Close waits for the plugin to revert and exit
	// when asked over gRPC before it escalates to signals. Zero means 2s.
	CloseGrace time.Duration
	// KillGrace is how long the plugin gets after SIGTERM, and again after
	// SIGCONT, before SIGKILL. Zero means 500ms.
	KillGrace time.Duration
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
	// A process group of its own: the terminal's Ctrl-C, a hang-up or a
	// SIGQUIT reach the host only, which reverts in order and then closes
	// its plugins, instead of killing the plugins under the host's feet.
	cmd.SysProcAttr.Setpgid = true
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: Handshake(),
		Plugins:         HostPluginMap(),
		Cmd:             cmd,
		// A command with its own Env chose the plugin's whole environment
		// (os/exec's meaning); go-plugin would otherwise append ours after
		// it, and ours would win (the run's --kubeconfig over $KUBECONFIG).
		SkipHostEnv:      cmd.Env != nil,
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
	// argv[0] names the plugin for people: an installed plugin is started
	// from a descriptor (/proc/self/fd/N), whose path says nothing.
	name := cmd.Path
	if len(cmd.Args) > 0 && cmd.Args[0] != "" {
		name = cmd.Args[0]
	}
	select {
	case err := <-started:
		if err != nil {
			client.Kill()
			if pe := protocolError(name, err); pe != nil {
				return nil, pe
			}
			return nil, fmt.Errorf("start plugin %s: %w", name, err)
		}
	case <-ctx.Done():
		client.Kill()
		<-started
		return nil, fmt.Errorf("start plugin %s: %w", name, context.Cause(ctx))
	}
	fc := raw.(*Client)
	fc.exited = client.Exited
	p := &Plugin{
		client: client, cmd: cmd, Fault: fc, closeGrace: opts.CloseGrace, killGrace: opts.KillGrace,
		done: make(chan struct{}), closing: make(chan struct{}), watched: make(chan struct{}),
	}
	if p.closeGrace == 0 {
		p.closeGrace = 2 * time.Second
	}
	if p.killGrace == 0 {
		p.killGrace = 500 * time.Millisecond
	}
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
// waits for it; a plugin that has not exited within the close grace is
// ended with signals (see Kill). Close always returns: go-plugin's own Kill
// asks the plugin over gRPC without a deadline and blocks for good on a
// plugin that does not answer (a stopped process).
func (p *Plugin) Close() { p.end(p.closeGrace) }

// Kill ends a plugin that is not answering without asking it first:
// SIGTERM (the SDK reverts everything on it), then, if it has not exited
// within the kill grace, SIGCONT (a stopped process cannot handle its
// SIGTERM) and, after the grace again, SIGKILL. It returns once the process
// is gone, or after a last bounded wait if even SIGKILL did not end it.
func (p *Plugin) Kill() { p.end(0) }

// killWait bounds the wait for a process after SIGKILL, and for go-plugin's
// clean-up once the process is gone.
const killWait = 2 * time.Second

func (p *Plugin) end(grace time.Duration) {
	p.once.Do(func() { close(p.closing) })
	<-p.watched
	// go-plugin's Kill closes the connection and its goroutines; it returns
	// once the process has exited, which the escalation below ensures.
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		p.client.Kill()
	}()
	if grace > 0 && p.waitExit(cleaned, grace) {
		p.waitCleaned(cleaned)
		return
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGTERM, p.killGrace}, {syscall.SIGCONT, p.killGrace}, {syscall.SIGKILL, killWait}} {
		if p.client.Exited() {
			break
		}
		// os.Process signals through a pidfd: never another process that
		// reused the pid of one already reaped.
		_ = p.cmd.Process.Signal(step.sig)
		if p.waitExit(nil, step.wait) {
			break
		}
	}
	p.waitCleaned(cleaned)
}

// waitExit waits up to d for the plugin process to exit (or for go-plugin's
// Kill to return, which it does only then) and reports whether it did.
func (p *Plugin) waitExit(cleaned <-chan struct{}, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.client.Exited() {
			return true
		}
		select {
		case <-cleaned:
			return true
		case <-tick.C:
		case <-deadline.C:
			return p.client.Exited()
		}
	}
}

func (p *Plugin) waitCleaned(cleaned <-chan struct{}) {
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-cleaned:
	case <-t.C:
	}
}
