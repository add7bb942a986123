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

// PluginMap is the go-plugin plugin set for one fault. The host passes a nil
// fault; a plugin passes its own. Most code wants Serve or Launch instead.
func PluginMap(f Fault) plugin.PluginSet {
	p := &grpcPlugin{}
	if f != nil {
		p.server = newServer(f)
	}
	return plugin.PluginSet{pluginName: p}
}

// Serve runs a plugin process for f until its host closes it, then reverts
// whatever is still in effect. It is a plugin's whole main:
//
//	func main() { _ = sdk.Serve(context.Background(), myfault.New()) }
//
// A plugin whose host dies without closing it is sent SIGTERM by the kernel
// (the host asks for that when it starts the plugin); Serve reverts every
// fault still in effect before the signal takes the process down.
func Serve(ctx context.Context, f Fault) error {
	set := PluginMap(f)
	srv := set[pluginName].(*grpcPlugin).server

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-sigs:
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revertTimeout)
			_ = srv.revertAll(rctx)
			cancel()
			// Die of the signal that was sent, as the sender expects; the
			// reverts above are why we caught it at all.
			signal.Reset(sig)
			_ = syscall.Kill(os.Getpid(), sig.(syscall.Signal))
		case <-stop:
		}
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         set,
		GRPCServer:      plugin.DefaultGRPCServer,
	})
	close(stop)
	<-watched

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revertTimeout)
	defer cancel()
	return srv.revertAll(rctx)
}
