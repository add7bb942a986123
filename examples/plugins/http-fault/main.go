// Command chaos-plugin-http-fault is an example third-party fault plugin for
// chaos: an HTTP proxy that answers a chosen status for a share of the
// requests and passes the rest through. Its whole main is one sdk.Serve
// call; everything else is in package httpfault.
//
// Install it with
//
//	go build -o ~/.local/share/chaos/plugins/chaos-plugin-http-fault .
//	chaos plugins lock    # in the directory of your experiments
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/chaos-run/chaos/examples/plugins/http-fault/httpfault"
	"github.com/chaos-run/chaos/plugins/sdk"
)

func main() {
	if err := sdk.Serve(context.Background(), httpfault.New()); err != nil {
		fmt.Fprintln(os.Stderr, "chaos-plugin-http-fault:", err)
		os.Exit(1)
	}
}
