package sdk

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
)

// revertTimeout bounds the reverts a plugin makes on its own when its host
// is gone. It is generous: a revert that is cut short leaves a fault behind.
const revertTimeout = 30 * time.Second

// HostPluginMap is the go-plugin plugin set a host uses to talk to a plugin.
func HostPluginMap() plugin.PluginSet {
	return plugin.PluginSet{pluginName: &grpcPlugin{}}
}

// parentPoll is how often a plugin checks that its host is still its parent.
const parentPoll = 250 * time.Millisecond

// Serve runs a plugin process for f until its host closes it, then reverts
// whatever is still in effect. It is a plugin's whole main:
//
//	func main() { _ = sdk.Serve(context.Background(), myfault.New()) }
//
// Three things revert a fault without the host asking: its lease running
// out (the host stopped renewing), SIGTERM (the kernel sends it when the
// host dies: the host asks for that when it starts the plugin), and the
// plugin seeing that its parent changed (the host died and the plugin was
// re-parented, should the signal have been lost).
func Serve(ctx context.Context, f Fault) error {
	srv := NewServer(ctx, f)
	parent := os.Getppid()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(parentPoll)
		defer tick.Stop()
		for {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-tick.C:
				if os.Getppid() == parent {
					continue
				}
				sig = syscall.SIGTERM
			case <-stop:
				return
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revertTimeout)
			_ = srv.Close(rctx)
			cancel()
			// Die of the signal, as a sender expects; the reverts above are
			// why it was caught at all.
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
			return
		}
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         srv.PluginMap(),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
	close(stop)
	<-watched

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revertTimeout)
	defer cancel()
	return srv.Close(rctx)
}
