package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Main starts one cluster for a package's tests, runs them, stops the
// cluster and returns the exit code for os.Exit. *c is set while the tests
// run; it stays nil when the binaries are not built and CHAOS_CLUSTER_BIN
// is unset, and tests then skip through Need.
func Main(m *testing.M, c **Cluster) int {
	bin, required, err := Binaries()
	if err != nil {
		if required || !errors.Is(err, ErrNotBuilt) {
			fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "kubetest: skipping the tests that need a cluster: %v\n", err)
		return m.Run()
	}
	logs, err := os.CreateTemp("", "chaos-kube-*.log")
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		return 1
	}
	defer os.Remove(logs.Name())
	defer logs.Close()

	cluster, err := Start(context.Background(), bin, logs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubetest: %v\n", err)
		dumpTail(logs.Name())
		return 1
	}
	fmt.Fprintf(os.Stderr, "kubetest: cluster %s ready in %s (binaries in %s)\n",
		cluster.Server, cluster.StartTime.Round(1e7), filepath.Clean(bin))
	*c = cluster
	code := m.Run()
	cluster.Stop()
	*c = nil
	if code != 0 {
		dumpTail(logs.Name())
	}
	return code
}

// Need skips the test when there is no cluster (not built, not required).
func Need(t testing.TB, c *Cluster) *Cluster {
	t.Helper()
	if c == nil {
		t.Skipf("no test cluster: run `make cluster` (scripts/cluster.sh) to build it, or `make test`")
	}
	return c
}

// dumpTail prints the end of the components' log, for a failure.
func dumpTail(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	const keep = 8 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	fmt.Fprintf(os.Stderr, "kubetest: last of the cluster's log (%s):\n%s\n", path, b)
}
